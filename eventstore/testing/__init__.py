"""Helpers for testing code built on eventstore.

Your domain, with no store:

- ``scenario``: given/when/then tests of an aggregate (``then``, ``raises``, ``then_state``);
- ``check_aggregate``: generated command sequences checked against event-sourcing laws
  (replay, snapshots, codecs, your ``@invariant`` methods), optionally through a store;
- ``domain_events`` / ``event_sequences``: hypothesis strategies for your own properties.

Storage:

- ``RedisServer`` / ``redis_server``: throwaway redis-server processes (own port and dir);
- ``RedisClusterServers``: a throwaway Redis Cluster of N primaries;
- ``EventStoreContract``: the contract test suite every store configuration must pass;
- ``assert_replay_consistent``: the replay laws, for your own property-based tests.

The pytest plugin ``eventstore.testing.pytest_plugin`` (registered on install) adds the
``redis_server`` and ``event_store`` fixtures. The tools that need hypothesis or pytest
load them on first use: install the ``testing`` extra (``redis-eventstore[testing]``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from eventstore.testing._blocking import BlockingAsyncStore
from eventstore.testing._cluster import RedisClusterServers
from eventstore.testing._errors import (
    AggregateCheckFailed,
    CheckSetupError,
    ScenarioError,
    ScenarioFailed,
)
from eventstore.testing._laws import assert_replay_consistent
from eventstore.testing._scenario import Scenario, scenario
from eventstore.testing._servers import RedisServer, free_port, redis_server

if TYPE_CHECKING:
    from eventstore.testing._check import check_aggregate
    from eventstore.testing._contract import ContractEvent, EventStoreContract
    from eventstore.testing._strategies import domain_events, event_sequences

__all__ = [
    "RedisServer",
    "RedisClusterServers",
    "BlockingAsyncStore",
    "free_port",
    "redis_server",
    "EventStoreContract",
    "ContractEvent",
    "assert_replay_consistent",
    # testing your domain
    "scenario",
    "Scenario",
    "check_aggregate",
    "domain_events",
    "event_sequences",
    "ScenarioFailed",
    "AggregateCheckFailed",
    "ScenarioError",
    "CheckSetupError",
]

# name -> (module, the third-party package it needs)
_LAZY = {
    "check_aggregate": ("_check", "hypothesis"),
    "domain_events": ("_strategies", "hypothesis"),
    "event_sequences": ("_strategies", "hypothesis"),
    "EventStoreContract": ("_contract", "pytest"),
    "ContractEvent": ("_contract", "pytest"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'eventstore.testing' has no attribute {name!r}")
    module, needs = _LAZY[name]
    try:
        loaded = importlib.import_module(f"eventstore.testing.{module}")
    except ModuleNotFoundError as exc:
        if exc.name != needs:
            raise
        raise ImportError(
            f"eventstore.testing.{name} needs {needs}: pip install 'redis-eventstore[testing]'"
        ) from exc
    value = getattr(loaded, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
