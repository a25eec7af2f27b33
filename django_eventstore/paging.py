"""Paging through the events stream with the public store API: one loop for the REST feed and the commands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

from .core.events import Event, MalformedMessage
from .core.limits import READ_BATCH

if TYPE_CHECKING:
    from .core.facade import EventStore

SCAN_PAGE = READ_BATCH - 1  # a page and the one message that says whether another follows: one batched read


@dataclass(frozen=True)
class FeedPage:
    """Events and malformed messages in stream order; ``position`` is the cursor after them, ``more`` whether any follow."""

    events: list[Event]
    errors: list[MalformedMessage]
    position: int
    more: bool


def _position(event: Event) -> int:
    return event.position or 0  # events read back always carry their position


def read_pages(
    store: EventStore,
    after_position: int = 0,
    *,
    page_size: int = SCAN_PAGE,
    actor_type: str | None = None,
    actor_id: str | None = None,
    upto: int | None = None,
    upcast: bool = True,
) -> Iterator[FeedPage]:
    """Pages of at most ``page_size`` messages after a position (of one actor type, or one actor), up to ``upto``.

    Malformed messages count towards a page, so a cursor never stops on one;
    each read asks for one message more than a page to tell whether another
    page follows, so the last page says so and nothing is read after it.
    """
    position = after_position
    while True:
        read = store.read_all_with_errors(position, page_size + 1, actor_type=actor_type, actor_id=actor_id, upcast=upcast)
        positions = sorted([_position(e) for e in read.events] + [m.position for m in read.errors])
        if upto is not None:
            positions = [p for p in positions if p <= upto]
        if not positions:
            return
        last = positions[min(page_size, len(positions)) - 1]
        more = len(positions) > page_size
        yield FeedPage(
            [e for e in read.events if _position(e) <= last],
            [m for m in read.errors if m.position <= last],
            last,
            more,
        )
        if not more:
            return
        position = last
