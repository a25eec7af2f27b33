"""The sorted actor ids of the events stream, kept in memory and brought up to date before each listing.

Listing a million actors from the stream's subject state takes seconds (the
server pages it at 100,000 subjects, each page a large JSON reply; then every
subject is decoded and the ids sorted). The index does that once, remembering
the stream's last sequence at the time, and afterwards only reads the messages
stored since (batched direct gets, in stream order) to add the actors they
start. A page is then a binary search: the type and prefix filters are ranges
of the sorted ids, because an actor of type ``T`` is an id starting ``T-``.

The index is exact at the moment of each call, like the subject listing it
replaces: everything stored up to the stream's last sequence read at the start
of the call is in it. When more messages are new than a quarter of the actors
indexed (at least 10,000; or ``catch_up_limit``), reading them would cost more
than listing again, so the index is listed again instead.

With ``follow`` (seconds), a task on the store's loop goes on reading new
messages as they are stored, woken by the store's doorbell subscription, until
the index has not been used for that long; a listing then finds little or
nothing left to read, whatever the write rate. Off for a backend that waits by
blocking its thread (the memory backend).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from dataclasses import dataclass

from .backend import EVENTS, Backend
from .errors import EventStoreError
from .limits import READ_BATCH
from .subjects import NO_TYPE, Subjects
from .subjects import actor_type as actor_type_of

log = logging.getLogger("django_eventstore")

# Reading a new message costs about 3 times what listing one subject does at a million actors (measured by
# bench/scale_bench.py), and listing grows faster than the actors: so catch up on up to a quarter as many messages.
CATCH_UP_MIN = 10_000
CATCH_UP_SHARE = 4
FOLLOW_PAUSE = 0.05  # seconds between two catch-ups of the follower: bigger batches under a stream of writes


@dataclass(frozen=True)
class IndexPage:
    """Ids of one page, how many ids match the filter, and whether more follow the page."""

    ids: list[str]
    total: int
    more: bool


@dataclass
class _Ids:
    """The sorted ids as of stream sequence ``seq``; the untyped ids and the types, computed when first asked."""

    ids: list[str]
    seq: int
    untyped: list[str] | None = None
    types: list[str] | None = None


def _prefix_range(ids: list[str], prefix: str) -> tuple[int, int]:
    """The slice [lo, hi) of sorted ids that start with prefix."""
    lo = bisect.bisect_left(ids, prefix)
    stem = prefix.rstrip(chr(0x10FFFF))
    if not stem:
        return lo, len(ids)
    return lo, bisect.bisect_left(ids, stem[:-1] + chr(ord(stem[-1]) + 1), lo)


class ActorIndex:
    """Sorted actor ids of one events stream, refreshed from the stream before each use (see module docstring)."""

    def __init__(self, backend: Backend, subjects: Subjects, catch_up_limit: int | None = None, follow: float = 0.0):
        self.backend = backend
        self.subjects = subjects
        self.catch_up_limit = catch_up_limit
        self.follow = follow
        self._state: _Ids | None = None
        self._lock: asyncio.Lock | None = None
        self._follower: asyncio.Task[None] | None = None
        self._used = 0.0  # monotonic time of the last use
        self._advanced: asyncio.Future[None] | None = None  # resolved when the index moves on (wait_for)
        self.builds = 0  # how many times the index was listed from scratch (for tests and benchmarks)

    @property
    def position(self) -> int:
        """The stream sequence the index holds every actor up to (0 before its first use)."""
        return self._state.seq if self._state is not None else 0

    async def wait_for(self, position: int, timeout: float) -> bool:
        """Wait until the index holds the actors stored up to ``position`` (True), or ``timeout`` seconds passed (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.position < position:
            if self._advanced is None or self._advanced.done():
                self._advanced = loop.create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._advanced), max(deadline - loop.time(), 0))
            except TimeoutError:
                return False
        return True

    def forget(self) -> None:
        """Start empty (in a forked child, where the parent's loop and its follower are gone)."""
        self._state, self._lock, self._follower, self._advanced = None, None, None, None

    async def close(self) -> None:
        """Stop following the stream (on the store's loop)."""
        follower, self._follower = self._follower, None
        if follower is not None and not follower.done():
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)

    async def _follow(self) -> None:
        """Catch up as messages are stored, until the index has gone unused for ``follow`` seconds."""
        events = self.subjects.events_filter()
        try:
            while self._state is not None and time.monotonic() - self._used < self.follow:
                if await self.backend.wait_for_messages(EVENTS, events, self._state.seq, min(1.0, self.follow)):
                    await self._refresh()
                    await asyncio.sleep(FOLLOW_PAUSE)
        except EventStoreError as e:  # the next listing catches up (or lists again) and starts a new follower
            log.info("actor index: stopped following the stream: %s", e)

    async def _fresh(self) -> _Ids:
        """The ids as of the stream's last sequence now; keeps a follower running when ``follow`` is on."""
        self._used = time.monotonic()
        state = await self._refresh()
        if self.follow and (self._follower is None or self._follower.done()):
            self._follower = asyncio.get_running_loop().create_task(self._follow())
        return state

    async def _refresh(self) -> _Ids:
        """The ids as of the stream's last sequence now: caught up, or listed again."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one refresh at a time; callers waiting behind it find it fresh
            last = await self.backend.last_seq(EVENTS)
            state = self._state
            if state is None or last < state.seq or last - state.seq > self._catch_up_limit(state):
                state = await self._build(last)
            elif last > state.seq:
                state = await self._catch_up(state, last)
            self._state = state
            if self._advanced is not None and not self._advanced.done():
                self._advanced.set_result(None)
            return state

    def _catch_up_limit(self, state: _Ids) -> int:
        if self.catch_up_limit is not None:
            return self.catch_up_limit
        return max(CATCH_UP_MIN, len(state.ids) // CATCH_UP_SHARE)

    async def _build(self, last: int) -> _Ids:
        """List the stream's subjects: every actor stored up to ``last`` (read before listing) is in it."""
        started = time.monotonic()
        ids = []
        for subject in await self.backend.subjects(EVENTS, self.subjects.events_filter()):
            try:
                ids.append(self.subjects.actor_id_of(subject))
            except ValueError:
                log.warning("ignoring subject %r: not an encoded actor subject", subject)
        ids.sort()
        self.builds += 1
        log.debug("actor index: listed %d actors in %.3f s", len(ids), time.monotonic() - started)
        return _Ids(ids, last)

    async def _catch_up(self, state: _Ids, last: int) -> _Ids:
        """Add the actors first seen in the messages after state.seq, up to ``last``."""
        ids = state.ids
        new: set[str] = set()
        seq = state.seq + 1
        while seq <= last:
            msgs, pending = await self.backend.next_msgs(EVENTS, self.subjects.events_filter(), seq, min(READ_BATCH, last - seq + 1))
            for msg in msgs:
                if msg.seq > last:
                    break
                try:
                    actor_id = self.subjects.actor_id_of(msg.subject)
                except ValueError:
                    continue  # the listing ignores such subjects too (and says so when it meets them)
                i = bisect.bisect_left(ids, actor_id)
                if i == len(ids) or ids[i] != actor_id:
                    new.add(actor_id)
            if not msgs or pending == 0:
                break
            seq = msgs[-1].seq + 1
        if not new:
            return _Ids(ids, last, state.untyped, state.types)
        merged = ids + sorted(new)  # two sorted runs: the sort merges them in one pass
        merged.sort()
        return _Ids(merged, last)

    # ----- reads -----

    async def page(self, actor_type: str | None = None, prefix: str | None = None, limit: int = 100, after: str | None = None, offset: int = 0) -> IndexPage:
        """The ids of a page ordered by id (after ``after``, skipping ``offset``), the number matching, whether more follow."""
        state = await self._fresh()
        ids, lo, hi = self._range(state, actor_type, prefix)
        start = (bisect.bisect_right(ids, after, lo, hi) if after is not None else lo) + offset
        end = min(start + limit, hi)
        return IndexPage(ids[start:end] if start < hi else [], hi - lo, end < hi)

    async def ids(self, actor_type: str | None = None, prefix: str | None = None) -> list[str]:
        """Every matching id, sorted."""
        state = await self._fresh()
        ids, lo, hi = self._range(state, actor_type, prefix)
        return ids[lo:hi]

    async def types(self) -> list[str]:
        """The actor types present, sorted: one binary search per type, plus a look at each id without a type."""
        state = await self._fresh()
        if state.types is None:
            found = set()
            ids, i = state.ids, 0
            while i < len(ids):
                kind = actor_type_of(ids[i])
                found.add(kind)
                i = _prefix_range(ids, kind + "-")[1] if kind != NO_TYPE else i + 1
            state.types = sorted(found)
        return state.types

    @staticmethod
    def _range(state: _Ids, actor_type: str | None, prefix: str | None) -> tuple[list[str], int, int]:
        """A sorted list and the slice [lo, hi) of it that holds the ids of the type and prefix."""
        if actor_type == NO_TYPE:  # ids without "-" (or starting with one) are spread among the others
            if state.untyped is None:
                state.untyped = [i for i in state.ids if actor_type_of(i) == NO_TYPE]
            ids = state.untyped
            return (ids, *_prefix_range(ids, prefix)) if prefix else (ids, 0, len(ids))
        ids = state.ids
        narrowest = prefix or ""
        if actor_type is not None:
            if not actor_type or "-" in actor_type:  # a type is the id's part before its first "-": no id has these
                return ids, 0, 0
            typed = actor_type + "-"
            if narrowest.startswith(typed):
                pass
            elif typed.startswith(narrowest):
                narrowest = typed
            else:
                return ids, 0, 0
        return (ids, *_prefix_range(ids, narrowest)) if narrowest else (ids, 0, len(ids))
