"""The key schema: the one place that formats (and parses) Redis key names.

Every key of a partition shares the hash tag ``{<namespace>:p<n>}`` so that a script
touching them stays in one Cluster slot. The metadata key holds the namespace settings.

=================================  =========  ===============================================
key                                type       holds
=================================  =========  ===============================================
``<ns>:meta``                      hash       partitions, format, created_at
``{<ns>:p<n>}:a:<type>:<id>``      stream     one aggregate's events, entry id ``0-<version>``
``{<ns>:p<n>}:log``                stream     pointers to events, entry id ``0-<position>``
``{<ns>:p<n>}:pos``                string     last position handed out in the partition
``{<ns>:p<n>}:s:<type>:<id>``      hash       snapshot: version, fingerprint, state, time
``{<ns>:p<n>}:ix:<type>``          set        ids of the aggregates of one type
``{<ns>:p<n>}:types``              set        aggregate types present in the partition
``{<ns>:p<n>}:ckpt``               hash       registered checkpoints: name -> position
``{<ns>:p<n>}:dlq:<group>``        stream     dead letters of a consumer group
``{<ns>:p<n>}:retry:<group>``      stream     replayed dead letters waiting for the group
``<ns>:projections``               hash       projection name -> version serving reads
``<ns>:rm:<name>:v<version>:...``  any        read model keys of a projection version
``<ns>:lease:<name>:v<version>``   string     token of the runner applying that version
``<ns>:error:<name>:v<version>``   hash       last failure of that version, until it passes
``<ns>:live:<type>``               channel    live notifications (Pub/Sub, not a key)
``{<ns>:p<n>}:live:<type>``        channel    the same on a sharded cluster (SPUBLISH)
=================================  =========  ===============================================

On a cluster (``clustered``) a projection version's keys share its own hash tag, so that
its page commit (model writes and checkpoints) is one script in one slot:

=====================================  ======  ============================================
``{<ns>:rm:<name>:v<version>}:...``    any     read model keys
``{<ns>:rm:<name>:v<version>}#lease``  string  token of the runner applying that version
``{<ns>:rm:<name>:v<version>}#error``  hash    last failure of that version
``{<ns>:rm:<name>:v<version>}#ckpt``   hash    its checkpoints: ``p<n>`` -> position
=====================================  ======  ============================================

There the field ``projection:<name>:v<version>`` of ``{<ns>:p<n>}:ckpt`` is a floor the
runner writes after each commit (never ahead of the checkpoint), which the logs' safe
trim point reads as on one server.
"""

from __future__ import annotations

import re
import zlib

import attrs

__all__ = ["AggregateKey", "KeySchema", "partition_of", "validate_name"]

_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def validate_name(kind: str, value: str) -> str:
    """Check a namespace, type or group name: letters, digits, ``_ . -`` only."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(f"{kind} {value!r} must be letters, digits, '_', '.' or '-'")
    return value


def partition_of(aggregate_id: str, partitions: int) -> int:
    """The partition of an aggregate: a stable hash (CRC-32) of its id, mod ``partitions``."""
    return zlib.crc32(aggregate_id.encode()) % partitions


@attrs.frozen
class AggregateKey:
    """The parsed parts of an aggregate stream key."""

    partition: int
    aggregate_type: str
    aggregate_id: str


@attrs.frozen
class KeySchema:
    """Key names of one namespace with a fixed number of partitions."""

    namespace: str = attrs.field(validator=lambda _i, _a, v: validate_name("namespace", v))
    partitions: int = 1
    clustered: bool = attrs.field(default=False, kw_only=True)
    """Whether the keys are for a Redis Cluster (a projection's keys get their own tag)."""

    @property
    def meta(self) -> str:
        return f"{self.namespace}:meta"

    def tag(self, partition: int) -> str:
        return f"{{{self.namespace}:p{partition}}}"

    def partition_of(self, aggregate_id: str) -> int:
        return partition_of(aggregate_id, self.partitions)

    def stream(self, aggregate_type: str, aggregate_id: str) -> str:
        part = self.partition_of(aggregate_id)
        return f"{self.tag(part)}:a:{aggregate_type}:{aggregate_id}"

    def stream_in(self, partition: int, aggregate_type: str, aggregate_id: str) -> str:
        """``stream(...)`` when the caller knows the aggregate's partition already (the
        same key: a test holds them together)."""
        return f"{self.tag(partition)}:a:{aggregate_type}:{aggregate_id}"

    def snapshot(self, aggregate_type: str, aggregate_id: str) -> str:
        part = self.partition_of(aggregate_id)
        return f"{self.tag(part)}:s:{aggregate_type}:{aggregate_id}"

    def append_keys(self, aggregate_type: str, aggregate_id: str) -> tuple[int, tuple[str, ...]]:
        """The partition, and the keys of one append in ``append.lua``'s order: stream,
        log, position, snapshot, type index, types (one hash and one tag for all six)."""
        part = self.partition_of(aggregate_id)
        tag = self.tag(part)
        return part, (
            f"{tag}:a:{aggregate_type}:{aggregate_id}",
            f"{tag}:log",
            f"{tag}:pos",
            f"{tag}:s:{aggregate_type}:{aggregate_id}",
            f"{tag}:ix:{aggregate_type}",
            f"{tag}:types",
        )

    def log(self, partition: int) -> str:
        return f"{self.tag(partition)}:log"

    def position(self, partition: int) -> str:
        return f"{self.tag(partition)}:pos"

    def index(self, partition: int, aggregate_type: str) -> str:
        return f"{self.tag(partition)}:ix:{aggregate_type}"

    def types(self, partition: int) -> str:
        return f"{self.tag(partition)}:types"

    def checkpoints(self, partition: int) -> str:
        return f"{self.tag(partition)}:ckpt"

    def dead_letters(self, partition: int, group: str) -> str:
        return f"{self.tag(partition)}:dlq:{group}"

    def retry(self, partition: int, group: str) -> str:
        """Replayed dead letters of ``group``, read by its workers next to the log."""
        return f"{self.tag(partition)}:retry:{group}"

    def live_channel(self, aggregate_type: str) -> str:
        """The Pub/Sub channel for live notifications of one aggregate type."""
        return f"{self.namespace}:live:{aggregate_type}"

    @property
    def live_pattern(self) -> str:
        """The pattern matching every live channel of the namespace (PSUBSCRIBE)."""
        return f"{self.namespace}:live:*"

    def live_shard_channel(self, partition: int, aggregate_type: str) -> str:
        """The sharded channel (SPUBLISH) of one aggregate type in one partition.

        It carries the partition's hash tag: the append script may only publish on a
        channel of the slot its keys are in.
        """
        return f"{self.tag(partition)}:live:{aggregate_type}"

    @property
    def live_shard_pattern(self) -> str:
        """The pattern matching every sharded live channel (``PUBSUB SHARDCHANNELS``)."""
        return f"{{{self.namespace}:p*}}:live:*"

    def live_channel_type(self, channel: str) -> str | None:
        """The aggregate type of a live channel (classic or sharded), or ``None``."""
        classic = f"{self.namespace}:live:"
        if channel.startswith(classic):
            return channel[len(classic) :] or None
        prefix = f"{{{self.namespace}:p"
        tag_end = channel.find("}:live:")
        if tag_end < 0 or not channel.startswith(prefix):
            return None
        if not channel[len(prefix) : tag_end].isdigit():
            return None
        return channel[tag_end + len("}:live:") :] or None

    @property
    def projections(self) -> str:
        """Hash of projection name -> the version that serves reads (blue/green)."""
        return f"{self.namespace}:projections"

    def projection_tag(self, projection: str, version: int) -> str:
        """The hash tag of a projection version's keys on a cluster."""
        return f"{{{self.namespace}:rm:{projection}:v{version}}}"

    def projection_lease(self, projection: str, version: int) -> str:
        """Who applies a projection version: the token of its latest runner."""
        if self.clustered:
            return f"{self.projection_tag(projection, version)}#lease"
        return f"{self.namespace}:lease:{projection}:v{version}"

    def projection_error(self, projection: str, version: int) -> str:
        """The last failure of a projection version (hash), cleared once it gets past it."""
        if self.clustered:
            return f"{self.projection_tag(projection, version)}#error"
        return f"{self.namespace}:error:{projection}:v{version}"

    def projection_checkpoints(self, projection: str, version: int) -> str:
        """On a cluster, the hash of a projection version's checkpoints (``p<n>`` fields)."""
        return f"{self.projection_tag(projection, version)}#ckpt"

    def read_model(self, projection: str, version: int, *parts: str) -> str:
        """A key of a projection's read model; each version has its own keys."""
        suffix = "".join(f":{part}" for part in parts)
        if self.clustered:
            return f"{self.projection_tag(projection, version)}{suffix}"
        return f"{self.namespace}:rm:{projection}:v{version}{suffix}"

    def pointer_target(self, partition: int, ref: str) -> AggregateKey | None:
        """The aggregate a log pointer of ``partition`` names, or ``None`` if ``ref`` is
        not a pointer of that partition.

        The append script writes ``<type>:<id>`` (the partition is the log's own, so the
        stream key need not be repeated: ~40 B less per event); pointers written before
        hold the whole stream key, which starts with ``{``. Type names never do.
        """
        if ref.startswith("{"):
            return self.parse_stream(ref)
        aggregate_type, sep, aggregate_id = ref.partition(":")
        if not sep or not aggregate_id or not _NAME.match(aggregate_type):
            return None
        if self.partition_of(aggregate_id) != partition:
            return None  # its stream is in another partition: not a pointer of this log
        return AggregateKey(partition, aggregate_type, aggregate_id)

    def parse_stream(self, key: str) -> AggregateKey | None:
        """Split an aggregate stream key into its parts, or ``None`` if it is not one."""
        prefix = f"{{{self.namespace}:p"
        if not key.startswith(prefix):
            return None
        tag_end = key.find("}:a:")
        if tag_end < 0:
            return None
        partition_text = key[len(prefix) : tag_end]
        aggregate_type, sep, aggregate_id = key[tag_end + 4 :].partition(":")
        if not partition_text.isdigit() or not sep or not aggregate_id:
            return None
        return AggregateKey(int(partition_text), aggregate_type, aggregate_id)
