"""What the admin pages show, read from the store: the actor list, one actor's events, the streams.

These functions take the request's query parameters (a bad one is a 404) and
return plain objects; ``admin.py`` checks permissions and renders them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from django.core.paginator import Paginator
from django.http import Http404, QueryDict
from django.urls import NoReverseMatch, reverse
from django.utils.http import urlencode

from . import ActorSnapshot, ActorSummary, Event, InvalidActorId, MalformedMessage, SnapshotNotFound
from .actor_urls import actor_id_from_segment, actor_segment
from .core.backend import StreamSummary
from .core.facade import EventStore
from .core.limits import MAX_PAGE

ACTORS_PER_PAGE = 100  # as the admin's list_per_page
EVENTS_PER_PAGE = 50
RAW_PREVIEW_CHARS = 4000
DATA_PREVIEW_CHARS = 120  # the one-line preview of an event's data in its row
SORT_LIMIT = 5_000  # actors a sort other than by id reads (each page of them one listing): past it, narrow the list first


def actor_id_of(segment: str) -> str:
    """The actor id of the URL segment; Http404 for a segment no actor has (``~41`` for ``A``, ``~2f`` for ``~2F``)."""
    try:
        return actor_id_from_segment(segment)
    except InvalidActorId as e:
        raise Http404(f"no actor has the URL segment {segment!r}") from e


def pretty_json(value: Any) -> str:
    """Indented JSON for people (the template escapes it); on one line when nested too deeply to indent.

    json.dumps recurses once or more per level: data the store accepted can be
    too deep for it under a view's stack, so the fallback walks it without recursion.
    """
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    except RecursionError:
        return _one_line_json(value)


def json_preview(value: Any, width: int = DATA_PREVIEW_CHARS) -> str:
    """JSON on one line, cut to ``width`` characters with "…": what a row shows before its full JSON is opened."""
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except RecursionError:
        text = _one_line_json(value)
    return text if len(text) <= width else text[: width - 1] + "…"


class _Text(str):
    """JSON text already made, among the values still to write."""


def _one_line_json(value: Any) -> str:
    """JSON on one line (keys sorted), built with a stack instead of recursion: any depth."""
    out: list[str] = []
    todo: list[Any] = [value]
    while todo:
        item = todo.pop()
        if type(item) is _Text:
            out.append(item)
        elif isinstance(item, dict):
            parts: list[Any] = [_Text("{")]
            for i, key in enumerate(sorted(item, key=str)):
                parts += [_Text((", " if i else "") + json.dumps(str(key), ensure_ascii=False) + ": "), item[key]]
            todo += reversed([*parts, _Text("}")])
        elif isinstance(item, (list, tuple)):
            parts = [_Text("[")]
            for i, element in enumerate(item):
                if i:
                    parts.append(_Text(", "))
                parts.append(element)
            todo += reversed([*parts, _Text("]")])
        else:
            out.append(json.dumps(item, ensure_ascii=False, default=str))
    return "".join(out)


def query_string(params: dict[str, Any], **changes: Any) -> str:
    """``?a=1&b=2`` from params updated with changes, leaving out empty values."""
    merged = {**params, **changes}
    kept = {k: v for k, v in merged.items() if v not in (None, "")}
    return "?" + urlencode(kept) if kept else "?"


MAX_DIGITS = 18  # a query parameter's number fits in 64 bits; int() of thousands of digits is refused


def positive_int(params: QueryDict, name: str) -> int | None:
    """A query parameter that must be a whole number >= 1 (ASCII digits) when present; Http404 otherwise."""
    text = params.get(name, "")
    if text == "":
        return None
    # str.isdigit() also accepts "²" and other non-ASCII digits, which int() refuses
    if not (text.isascii() and text.isdecimal() and len(text) <= MAX_DIGITS) or int(text) < 1:
        raise Http404(f"{name} must be a whole number from 1")
    return int(text)


# ----- the actor list -----


NO_TYPE = "_"  # the actor type of ids without "-" (or starting with one)


def type_label(actor_type: str) -> str:
    """An actor type as people read it: the ``_`` of ids without ``-`` is "(no type)"."""
    return "(no type)" if actor_type == NO_TYPE else actor_type


class NoSuchActor(Http404):
    """The actor has no events (the admin sends people back to the list with a message)."""

    def __init__(self, actor_id: str) -> None:
        super().__init__(f"actor {actor_id!r} has no events")
        self.actor_id = actor_id


@dataclass
class ActorRow:
    actor: ActorSummary
    url: str
    last_event_at: datetime | None = None

    @property
    def type_label(self) -> str:
        return type_label(self.actor.actor_type)


@dataclass
class Choice:
    label: str
    url: str
    selected: bool


@dataclass
class Column:
    """A header of the changelist: its label, and for a sortable column the link that sorts by it."""

    label: str
    field: str
    numeric: bool = False
    url: str = ""  # empty: not sortable
    sorted: str = ""  # "ascending", "descending" or empty
    unsort_url: str = ""


@dataclass
class ActorList:
    rows: list[ActorRow]
    total: int
    page: int
    page_count: int
    page_links: list[tuple[int | str, str]]  # (number or the ellipsis, url or "")
    type_choices: list[Choice]
    params: dict[str, str]
    columns: list[Column]
    sort_choices: list[Choice]
    notice: str = ""  # why the list is not in the order asked for

    @property
    def sidebar(self) -> list[tuple[str, str, list[Choice]]]:
        """The sidebar's blocks: (key, title, choices)."""
        return [("type", "By type", self.type_choices), ("order", "Sort by", self.sort_choices)]


# The changelist's orders (the ``o`` parameter): by id as text (the store's own order) when absent.
SORTS = {
    "": "Actor id (as text: 1, 10, 2)",
    "natural": "Actor id (natural: 1, 2, 10)",
    "-version": "Latest version, highest first",
    "version": "Latest version, lowest first",
    "-snapshot": "Snapshot version, highest first",
    "snapshot": "Snapshot version, lowest first",
}
_DIGITS = re.compile(r"([0-9]+)")


def natural_key(actor_id: str) -> tuple[tuple[str | int, ...], str]:
    """Sort key of natural order: runs of digits compare as numbers (account-2 before account-10).

    The id itself breaks ties (``a-01`` before ``a-1``), so the order is total:
    pages cut from it hold every actor exactly once.
    """
    parts = _DIGITS.split(actor_id)  # text, digits, text, ...: the same kind at the same index
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), actor_id


def _sort_key(order: str) -> Callable[[ActorSummary], Any]:
    """The key of a sort of SORTS; versions tie-break on natural id order, a missing snapshot counts as 0."""
    sign = -1 if order.startswith("-") else 1
    if order.lstrip("-") == "version":
        return lambda a: (sign * a.latest_version, natural_key(a.actor_id))
    if order.lstrip("-") == "snapshot":
        return lambda a: (sign * (a.snapshot_version or 0), natural_key(a.actor_id))
    return lambda a: natural_key(a.actor_id)


def every_actor(store: EventStore, actor_type: str | None, prefix: str | None, limit: int, batch: int = MAX_PAGE) -> list[ActorSummary] | None:
    """Every actor matching the filters, or None when more than ``limit`` match.

    The store lists in id order only; this walks its pages with the ``after``
    cursor, so an actor added meanwhile is not read twice. Each page costs a
    listing of the stream's subjects: the limit keeps the walk short.
    """
    actors: list[ActorSummary] = []
    after = None
    while True:
        listing = store.list_actors(actor_type=actor_type, prefix=prefix, limit=batch, after=after)
        if listing.total > limit:
            return None
        actors += listing.actors
        if listing.next_after is None:
            return actors
        after = listing.next_after


def actor_list(store: EventStore, params: QueryDict, actor_url: Callable[[str], str]) -> ActorList:
    """One page of actors for the changelist: ``q`` (id prefix), ``type``, ``o`` (a sort of SORTS) and ``p`` (1-based page)."""
    prefix = params.get("q", "")
    actor_type = params.get("type", "")
    order = params.get("o", "")
    if order not in SORTS:
        raise Http404(f"o must be one of {', '.join(repr(o) for o in SORTS if o)} (or absent: by id)")
    page = positive_int(params, "p") or 1
    start = (page - 1) * ACTORS_PER_PAGE
    listing = store.list_actors(actor_type=actor_type or None, prefix=prefix or None, limit=ACTORS_PER_PAGE, offset=start)
    actors, total, notice = listing.actors, listing.total, ""
    if order and total > 1:
        if total > SORT_LIMIT:
            everyone = None
        else:
            everyone = listing.actors if total <= ACTORS_PER_PAGE and page == 1 else every_actor(store, actor_type or None, prefix or None, SORT_LIMIT)
        if everyone is None:
            notice = (
                f"{SORTS[order]}: sorting reads every matching actor, at most {SORT_LIMIT:,}, and {total:,} match. "
                "Narrow the list with the type filter or a search; meanwhile it is sorted by actor id."
            )
            order = ""
        else:
            everyone = sorted(everyone, key=_sort_key(order))
            actors, total = everyone[start : start + ACTORS_PER_PAGE], len(everyone)
    if page > 1 and not actors:
        raise Http404(f"there is no page {page}")
    kept = {"q": prefix, "type": actor_type, "o": params.get("o", "")}
    paginator = Paginator(range(total), ACTORS_PER_PAGE)
    page_links = [
        (n, "" if n == Paginator.ELLIPSIS else query_string(kept, p=n if n != 1 else None))
        for n in paginator.get_elided_page_range(page)
    ]
    types = set(store.actor_types()).union(a.actor_type for a in actors)  # the store reuses a listing made within a second
    if actor_type:
        types.add(actor_type)
    choices = [Choice("All", query_string(kept, type=None), not actor_type)]
    choices += [Choice(type_label(t), query_string(kept, type=t), t == actor_type) for t in sorted(types)]
    return ActorList(
        rows=[ActorRow(a, actor_url(actor_segment(a.actor_id)), a.last_event_at) for a in actors],
        total=total,
        page=page,
        page_count=paginator.num_pages,
        page_links=page_links,
        type_choices=choices,
        params=kept,
        columns=_columns(kept, order),
        sort_choices=[Choice(label, query_string(kept, o=o, p=None), o == order) for o, label in SORTS.items()],
        notice=notice,
    )


def _columns(kept: dict[str, str], order: str) -> list[Column]:
    """The changelist's headers; a sortable one sorts by it (versions highest first), then the other way round."""

    def sortable(label: str, field: str, first: str, numeric: bool = False) -> Column:
        name = first.lstrip("-")
        if order.lstrip("-") != name:
            return Column(label, field, numeric, query_string(kept, o=first, p=None))
        flipped = name if order.startswith("-") else "-" + name
        toggle = query_string(kept, o=flipped if flipped in SORTS else None, p=None)
        return Column(label, field, numeric, toggle, "descending" if order.startswith("-") else "ascending", query_string(kept, o=None, p=None))

    return [
        sortable("Actor id", "actor_id", "natural"),
        Column("Type", "actor_type"),
        sortable("Latest version", "latest_version", "-version", numeric=True),
        sortable("Snapshot version", "snapshot_version", "-snapshot", numeric=True),
        Column("Last event at (UTC)", "last_event_at"),
    ]


# ----- one actor -----


def api_url(actor_id: str) -> str | None:
    """The actor's URL in the REST API, or None when the project does not mount the API."""
    try:
        return reverse("django_eventstore:actor-detail", args=[actor_segment(actor_id)])
    except NoReverseMatch:
        return None


@dataclass
class EventRow:
    """An event of the table, or a malformed message (``malformed`` set, ``event`` None)."""

    position: int
    event: Event | None = None
    malformed: MalformedMessage | None = None

    @property
    def forgotten(self) -> bool:
        """The actor was forgotten: the event is kept but its data is gone (None)."""
        return self.event is not None and self.event.data is None

    @property
    def data_json(self) -> str:
        return pretty_json(self.event.data) if self.event and not self.forgotten else ""

    @property
    def data_preview(self) -> str:
        return json_preview(self.event.data) if self.event and not self.forgotten else ""

    @property
    def metadata_json(self) -> str:
        return pretty_json(self.event.metadata) if self.event and self.event.metadata else ""

    @property
    def header_items(self) -> list[tuple[str, str]]:
        """The malformed message's headers as pairs (a header named "items" must not shadow dict.items)."""
        if self.malformed is None or not self.malformed.headers:
            return []
        return list(self.malformed.headers.items())

    @property
    def raw_text(self) -> str:
        if self.malformed is None:
            return ""
        text = self.malformed.raw.decode("utf-8", errors="replace")
        return text if len(text) <= RAW_PREVIEW_CHARS else text[:RAW_PREVIEW_CHARS] + " …"


@dataclass
class EventWindow:
    """The events with versions first..last (in stream order) and the malformed messages among them."""

    rows: list[EventRow]
    first: int
    last: int  # first - 1 when the window holds no event


def read_window(store: EventStore, actor_id: str, first: int, size: int, upcast: bool = True) -> EventWindow:
    """Events ``first``.. (at most ``size``) and the malformed messages that belong to this window.

    A malformed message belongs to the window whose events surround it: after
    the event ``first - 1`` and before the window's last event (or anywhere
    after it, on the actor's last window), so paging shows each exactly once.
    One read: the event before the window, the window, one event after it.
    """
    result = store.get_events_with_errors(actor_id, max(first - 2, 0), limit=size + 2, upcast=upcast)
    events = result.events
    lower = 0
    if events and events[0].version == first - 1:
        lower = events[0].position or 0
        events = events[1:]
    shown, after = events[:size], events[size:]
    upper = (shown[-1].position or 0) if after else None
    errors = [m for m in result.errors if m.position > lower and (upper is None or m.position < upper)]
    rows = sorted(
        [EventRow(e.position or 0, event=e) for e in shown] + [EventRow(m.position, malformed=m) for m in errors],
        key=lambda r: r.position,
    )
    return EventWindow(rows, first, shown[-1].version if shown else first - 1)  # type: ignore[arg-type]


@dataclass
class ActorView:
    actor_id: str
    latest_version: int
    snapshot: ActorSnapshot | None
    window: EventWindow
    rows: list[EventRow]
    newest_first: bool
    from_version: int | None
    links: dict[str, str]  # "oldest", "older", "newer", "newest", "flip"
    notice: str = ""  # what the page shows instead of what was asked for
    stored: bool = False  # events shown as stored (``?stored=1``), not upcast

    @property
    def snapshot_json(self) -> str:
        return pretty_json(self.snapshot.state) if self.snapshot else ""

    @property
    def api_url(self) -> str | None:
        return api_url(self.actor_id)


def actor_page(store: EventStore, actor_id: str, params: QueryDict) -> ActorView:
    """The actor page: ``order`` (``asc``, ``desc``), ``from`` (the version of the first row shown) or ``to`` (of the last).

    Oldest first, ``from`` is the window's lowest version and ``to`` its highest;
    newest first, the other way round. The window holds at most EVENTS_PER_PAGE
    events and never passes version 1 or the latest version, so a page anchored
    at one end is short rather than repeating events of the next page.
    """
    newest_first = params.get("order") == "desc"
    start = positive_int(params, "from")
    end = positive_int(params, "to")
    if start is not None and end is not None:
        raise Http404("give from or to, not both")
    latest = store.get_latest_version(actor_id)
    size = EVENTS_PER_PAGE
    low, high = (end, start) if newest_first else (start, end)  # the window's lowest or highest version
    if high is None and (low is not None or not newest_first):
        first = min(low or 1, max(latest, 1))
        count = size
    else:
        top = min(high or latest, latest)
        first = max(top - size + 1, 1)
        count = max(top - first + 1, 1)
    stored = params.get("stored") == "1"
    window = read_window(store, actor_id, first, count, upcast=not stored)
    if latest == 0 and not window.rows:
        raise NoSuchActor(actor_id)
    asked = start if start is not None else end
    notice = ""
    if asked is not None and asked > latest:
        which = "from" if start is not None else "to"
        notice = f"There is no version {asked} ({which}): the latest version is {latest}, so the page shows the latest events."
    try:
        snapshot: ActorSnapshot | None = store.get_latest_snapshot(actor_id)
    except SnapshotNotFound:
        snapshot = None
    rows = list(reversed(window.rows)) if newest_first else window.rows
    return ActorView(actor_id, latest, snapshot, window, rows, newest_first, start, _event_links(window, latest, newest_first), notice, stored)


def _event_links(window: EventWindow, latest: int, newest_first: bool) -> dict[str, str]:
    """Query strings of the pages around a window ("older", "oldest", "newer", "newest") and of the flipped order.

    "Older" ends right below the window and "newer" starts right above it, so
    walking either way shows every event (and malformed message) once.
    """

    def link(desc: bool, **anchor: int | None) -> str:
        return query_string({"order": "desc" if desc else None, **anchor})

    if newest_first:
        older = {"older": link(True, **{"from": window.first - 1}), "oldest": link(True, to=1)}
        newer = {"newer": link(True, to=window.last + 1), "newest": link(True)}
    else:
        older = {"older": link(False, to=window.first - 1), "oldest": link(False)}
        newer = {"newer": link(False, **{"from": window.last + 1}), "newest": link(False, to=latest)}
    links = {"flip": link(not newest_first, **{"from": window.first if newest_first else window.last})}
    if window.first > 1:
        links.update(older)
    if window.last < latest:
        links.update(newer)
    return links


# ----- the streams -----


def stream_rows(store: EventStore) -> dict[str, Any]:
    """The server and both streams, as the overview shows them."""
    summary = store.server_summary()
    return {"server": summary, "streams": [(s, cluster_text(s.cluster)) for s in summary.streams]}


def cluster_text(cluster: dict[str, Any], width: int | None = None) -> str:
    """``name: leader X; replicas: Y current, Z lag 12``, or "not clustered" for a single server.

    ``width`` cuts server names (default names are 56-character ids); the commands use it.
    """
    if not cluster.get("name"):
        return "not clustered"
    peers = ", ".join(replica_text(r, width) for r in cluster.get("replicas") or [])
    return f"{cluster['name']}: leader {server_name(cluster.get('leader'), width)}" + (f"; replicas: {peers}" if peers else "")


def server_name(name: str | None, width: int | None = None) -> str:
    """A server's name, cut to ``width`` characters with "..." (``NBMRSIRMC...``); "none" when there is none."""
    if not name:
        return "none"
    return name if width is None or len(name) <= width else name[: width - 3] + "..."


def replica_text(replica: dict[str, Any], width: int | None = None) -> str:
    """A follower and how far behind it is: ``n2 current``, ``n3 lag 12``, ``n3 lagging``, ``n3 offline``."""
    name = server_name(replica.get("name"), width)
    lag = replica.get("lag")
    if replica.get("offline"):
        return f"{name} offline"
    if replica.get("current"):
        return f"{name} current"
    return f"{name} lag {lag:,}" if isinstance(lag, int) and lag > 0 else f"{name} lagging"


def placement_text(stream: StreamSummary, width: int | None = None) -> str:
    """A stream's replicas and where they are: ``3 replicas, cluster east: leader n1; replicas: n2 current, n3 current``."""
    replicas = f"{stream.replicas} replica{'s' if stream.replicas != 1 else ''}"
    if not stream.cluster.get("name"):
        return f"{replicas}, not clustered (server {server_name(stream.cluster.get('leader'), width)})"
    return f"{replicas}, cluster {cluster_text(stream.cluster, width)}"
