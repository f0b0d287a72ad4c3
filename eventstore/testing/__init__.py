"""Helpers for testing code built on eventstore: throwaway Redis servers."""

from eventstore.testing._servers import RedisServer, free_port, redis_server

__all__ = ["RedisServer", "free_port", "redis_server"]
