"""Helpers for testing code built on eventstore.

- ``RedisServer`` / ``redis_server``: throwaway redis-server processes (own port and dir);
- ``RedisClusterServers``: a throwaway Redis Cluster of N primaries;
- ``EventStoreContract``: the contract test suite every store configuration must pass;
- ``assert_replay_consistent``: the replay laws, for your own property-based tests.
"""

from eventstore.testing._cluster import RedisClusterServers
from eventstore.testing._contract import ContractEvent, EventStoreContract
from eventstore.testing._laws import assert_replay_consistent
from eventstore.testing._servers import RedisServer, free_port, redis_server

__all__ = [
    "RedisServer",
    "RedisClusterServers",
    "free_port",
    "redis_server",
    "EventStoreContract",
    "ContractEvent",
    "assert_replay_consistent",
]
