"""Property-based tests of your own aggregates, with hypothesis and a real store.

In a project these functions live in your test suite (pytest collects them); here
``main()`` calls them so the docs test can run the file as a program.

Run: EVENTSTORE_URL=redis://127.0.0.1:6379/0 python docs/examples/property_tests.py
"""

import os
import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregates import Aggregate, DomainEvent, projector
from eventstore import EventStore, Repository
from eventstore.testing import assert_replay_consistent

URL = os.environ.get("EVENTSTORE_URL", "redis://127.0.0.1:6379/0")


class ItemAdded(DomainEvent):
    sku: str
    quantity: int


class ItemRemoved(DomainEvent):
    sku: str


class Cart(Aggregate):
    items: dict[str, int] = {}  # noqa: RUF012 - every instance gets its own copy

    def add(self, sku: str, quantity: int) -> None:
        if quantity <= 0:
            raise ValueError("quantity must be positive")
        self.trigger(ItemAdded(sku=sku, quantity=quantity))

    def remove(self, sku: str) -> None:
        if sku not in self.items:
            raise KeyError(sku)
        self.trigger(ItemRemoved(sku=sku))

    @projector(ItemAdded)
    def _added(self, event: ItemAdded) -> None:
        self.items = {**self.items, event.sku: self.items.get(event.sku, 0) + event.quantity}

    @projector(ItemRemoved)
    def _removed(self, event: ItemRemoved) -> None:
        self.items = {sku: n for sku, n in self.items.items() if sku != event.sku}


store = EventStore.from_url(URL, namespace=f"carts-{uuid.uuid4().hex[:6]}")
carts = Repository(store, Cart, snapshot_every=3)

skus = st.sampled_from(["apple", "pear", "plum"])
commands = st.lists(
    st.one_of(
        st.tuples(st.just("add"), skus, st.integers(1, 5)), st.tuples(st.just("remove"), skus)
    ),
    max_size=12,
)


# --- law: snapshot + tail == full replay == folding the events, at every version ----------
@settings(max_examples=25, deadline=None)
@given(commands, st.integers(1, 4))
def test_replay_laws_hold_for_any_history(script: list[tuple[Any, ...]], saves_every: int) -> None:
    cart = Cart()
    for step, command in enumerate(script, start=1):
        try:
            getattr(cart, command[0])(*command[1:])
        except KeyError:
            continue  # the rule refused the command: nothing happened
        if step % saves_every == 0:
            carts.save(cart)
    carts.save(cart)
    if cart.version:
        loaded = assert_replay_consistent(carts, cart.id)
        assert loaded.items == cart.items


# --- invariant: quantities are positive, whatever the commands ----------------------------
@settings(max_examples=25, deadline=None)
@given(commands)
def test_quantities_stay_positive(script: list[tuple[Any, ...]]) -> None:
    cart = Cart()
    for command in script:
        try:
            getattr(cart, command[0])(*command[1:])
        except KeyError:
            continue
    carts.save(cart)
    if cart.version:
        assert all(n > 0 for n in carts.get(cart.id).items.values())


def main() -> None:
    test_replay_laws_hold_for_any_history()
    test_quantities_stay_positive()
    print("replay laws and invariants held for 25 generated histories each")
    store.close()


if __name__ == "__main__":
    main()
