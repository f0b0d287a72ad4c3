"""``stats`` counts who listens to the live notifications right now, human and ``--json``."""

from __future__ import annotations

from eventstore import EventStore
from tests.cli_helpers import run, run_json, write_bank


def test_stats_shows_open_live_feeds(redis_url: str, namespace: str, store: EventStore) -> None:
    write_bank(store)
    # the feeds of one store share its connection: the count is of stores (processes)
    with (
        EventStore.from_url(redis_url, namespace=namespace) as other,
        store.live("Account"),
        other.live("Account"),
        store.live(),  # a pattern
    ):
        data = run_json(redis_url, namespace, "stats")
        human = run(redis_url, namespace, "stats")
    (account,) = data["aggregate_types"]
    assert account["live_subscribers"] == 2
    assert data["live"]["channels"] == {store.keys.live_channel("Account"): 2}
    patterns = data["live"]["patterns"]
    assert patterns >= 1  # server-wide: Redis cannot narrow PUBSUB NUMPAT to a namespace
    assert human.exit_code == 0
    summary = f"live now: 2 subscribers on 1 channels, {patterns} pattern subscriptions"
    assert summary in human.stdout
    closed = run_json(redis_url, namespace, "stats")
    assert (closed["aggregate_types"][0]["live_subscribers"], closed["live"]["channels"]) == (0, {})
    assert "live now: 0 subscribers on 0 channels" in run(redis_url, namespace, "stats").stdout
