"""Aggregates, events, projectors, snapshots and upcasting, end to end.

Run: EVENTSTORE_URL=redis://127.0.0.1:6379/0 python docs/examples/concepts.py
"""

import os
import uuid
from datetime import date
from typing import Any

from aggregates import Aggregate, DomainEvent, projector, upcaster
from eventstore import ConcurrencyError, EventStore, NewEvent, Repository

URL = os.environ.get("EVENTSTORE_URL", "redis://127.0.0.1:6379/0")


# --- events: frozen, validated, named -----------------------------------------------------
class LibraryCardIssued(DomainEvent):
    holder: str
    expires: date


class BookBorrowed(DomainEvent):
    isbn: str


class BookReturned(DomainEvent):
    isbn: str


# --- upcasting: version 2 of an event, and how version 1 payloads are brought up ----------
class HolderRenamed(DomainEvent):
    event_type = "HolderRenamed"  # the stored name; the class name is the default
    schema_version = 2
    first: str
    last: str


@upcaster("HolderRenamed", from_version=1)
def split_name(data: dict[str, Any]) -> dict[str, Any]:
    first, _, last = data.pop("name").partition(" ")
    return {**data, "first": first, "last": last}


# --- an aggregate: rules in commands, state changes in projectors -------------------------
class LibraryCard(Aggregate):
    holder: str = ""
    expires: date = date.min
    borrowed: list[str] = []  # noqa: RUF012 - every instance gets its own copy

    MAX_BOOKS = 3  # not annotated: a constant, not state

    def issue(self, holder: str, expires: date) -> None:
        self.trigger(LibraryCardIssued(holder=holder, expires=expires))

    def borrow(self, isbn: str) -> None:
        if len(self.borrowed) >= self.MAX_BOOKS:
            raise ValueError(f"{self.holder} already has {self.MAX_BOOKS} books")
        self.trigger(BookBorrowed(isbn=isbn))

    def give_back(self, isbn: str) -> None:
        if isbn not in self.borrowed:
            raise ValueError(f"{isbn} is not borrowed on this card")
        self.trigger(BookReturned(isbn=isbn))

    @projector(LibraryCardIssued)
    def _issued(self, event: LibraryCardIssued) -> None:
        self.holder, self.expires = event.holder, event.expires

    @projector(BookBorrowed)
    def _borrowed(self, event: BookBorrowed) -> None:
        self.borrowed = [*self.borrowed, event.isbn]

    @projector(BookReturned)
    def _returned(self, event: BookReturned) -> None:
        self.borrowed = [isbn for isbn in self.borrowed if isbn != event.isbn]

    @projector(HolderRenamed)
    def _renamed(self, event: HolderRenamed) -> None:
        self.holder = f"{event.first} {event.last}"


# --- a subclass inherits projectors and may override them ---------------------------------
class StudentCard(LibraryCard):
    MAX_BOOKS = 5


def main() -> None:
    store = EventStore.from_url(URL, namespace=f"concepts-{uuid.uuid4().hex[:6]}")
    cards = Repository(store, LibraryCard, snapshot_every=4)

    # --- saving and loading ---------------------------------------------------------------
    card = LibraryCard(id="card-7")
    card.issue("Ada Lovelace", date(2030, 1, 1))
    card.borrow("978-0262033848")
    cards.save(card, correlation_id="signup-42")  # one atomic append of two events
    loaded = cards.get("card-7")
    assert loaded.borrowed == ["978-0262033848"]
    assert loaded.version == 2

    # --- optimistic concurrency -----------------------------------------------------------
    first, second = cards.get("card-7"), cards.get("card-7")
    first.borrow("978-0131103627")
    cards.save(first)
    second.give_back("978-0262033848")
    try:
        cards.save(second)  # second was loaded at version 2; the stream is at 3 now
    except ConcurrencyError as conflict:
        print(f"conflict: expected {conflict.expected_version}, found {conflict.actual_version}")
        second = cards.get("card-7")  # reload and run the command again
        second.give_back("978-0262033848")
        cards.save(second)

    # --- snapshots: written inside the save that crosses a multiple of snapshot_every -----
    snapshot = store.read_snapshot("LibraryCard", "card-7")
    assert snapshot is not None
    assert snapshot.version == 4
    assert cards.get("card-7", version=2).borrowed == ["978-0262033848"]  # any past version

    # --- upcasting: a version-1 payload written by older code loads as version 2 ----------
    old = store.append_encoded("LibraryCard", "card-7", [_v1_rename("Ada King")], 4)
    assert cards.get("card-7").holder == "Ada King"
    print(f"card-7 at version {old.last_version}: {cards.get('card-7')}")

    # --- inheritance: StudentCard keeps LibraryCard's projectors, with its own rule ------
    students = Repository(store, StudentCard)
    student = StudentCard()
    student.issue("Grace Hopper", date(2031, 6, 30))
    for n in range(5):
        student.borrow(f"isbn-{n}")
    students.save(student)
    assert len(students.get(student.id).borrowed) == 5

    for recorded in store.read("LibraryCard", "card-7"):
        print(f"  v{recorded.version} {recorded.event_type}: {recorded.data}")
    store.close()


def _v1_rename(name: str) -> NewEvent:
    """What older code stored: ``{"name": ...}`` under schema version 1."""
    return NewEvent(
        event_id=str(uuid.uuid4()),
        event_type="HolderRenamed",
        schema_version=1,
        timestamp_ms=0,
        data=f'{{"name": "{name}"}}',
    )


if __name__ == "__main__":
    main()
