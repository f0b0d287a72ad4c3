"""Helpers for testing code built on eventstore.

- ``RedisServer`` / ``redis_server``: throwaway redis-server processes (own port and dir);
- ``EventStoreContract``: the contract test suite every store configuration must pass.
"""

from eventstore.testing._contract import ContractEvent, EventStoreContract
from eventstore.testing._servers import RedisServer, free_port, redis_server

__all__ = ["RedisServer", "free_port", "redis_server", "EventStoreContract", "ContractEvent"]
