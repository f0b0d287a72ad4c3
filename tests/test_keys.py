"""The key schema: the ways to name an aggregate's stream agree with each other."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from eventstore._core.keys import KeySchema
from tests.strategies import names

ids = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=40)


@given(namespace=names, partitions=st.integers(1, 64), aggregate_type=names, aggregate_id=ids)
def test_a_pointer_names_the_stream_the_schema_names(
    namespace: str, partitions: int, aggregate_type: str, aggregate_id: str
) -> None:
    keys = KeySchema(namespace, partitions)
    partition = keys.partition_of(aggregate_id)
    stream = keys.stream(aggregate_type, aggregate_id)
    assert keys.stream_in(partition, aggregate_type, aggregate_id) == stream
    target = keys.pointer_target(partition, f"{aggregate_type}:{aggregate_id}")
    assert target is not None
    assert (target.partition, target.aggregate_type, target.aggregate_id) == (
        partition,
        aggregate_type,
        aggregate_id,
    )
    other = (partition + 1) % partitions
    if other != partition:  # a pointer of another partition's aggregate is refused
        assert keys.pointer_target(other, f"{aggregate_type}:{aggregate_id}") is None
    parsed = keys.parse_stream(stream)  # and the whole key, as earlier pointers held it
    assert parsed == target
