"""Property-based tests (hypothesis) of the store and the REST API with hostile input.

Any unicode actor ids (and ids made of the characters that subjects and URLs
treat specially), event types, nested data, huge integers, NaN and infinities,
duplicate JSON keys, invalid JSON: the REST API never answers 500; a write
touches only its own actor; a read returns only that actor's events; a write
that is refused stores nothing (an append stores all of its events or none).
Each property runs a modest number of examples (``EVENTSTORE_FUZZ_EXAMPLES``) against the test's own stream.
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any
from urllib.parse import quote

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from django_eventstore import ActorSnapshot, Event, InvalidActorId, InvalidEvent, SnapshotNotFound, get_store
from django_eventstore.actor_urls import actor_id_from_segment, actor_segment
from django_eventstore.core.facade import EventStore

pytestmark = [
    pytest.mark.django_db,
    # on a failure hypothesis imports libcst (when installed) to suggest a patch, which warns through mypy_extensions
    pytest.mark.filterwarnings("ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"),
]
API = "/api/eventstore/"
REFUSED = (InvalidEvent, InvalidActorId)  # EventTooLarge is an InvalidEvent
# a modest count keeps the file near 30 s; EVENTSTORE_FUZZ_EXAMPLES=500 searches harder
FUZZ = settings(max_examples=int(os.environ.get("EVENTSTORE_FUZZ_EXAMPLES", "30")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# ----- strategies -----

# 2**bits, either sign: past JavaScript's exact integers, past uint64, and around Python's 4,300-digit limit of int-to-text conversion
HUGE = st.builds(lambda bits, sign: sign * 2**bits, st.sampled_from([53, 63, 64, 65, 332, 14280, 14290, 16610]), st.sampled_from([1, -1]))
HOSTILE_NUMBERS = HUGE | st.sampled_from([math.nan, math.inf, -math.inf])
GOOD_LEAVES = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
KEYS = st.text(max_size=8)


def nested(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Lists and dicts of leaves, a few levels deep."""
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4), max_leaves=10)


GOOD_JSON = nested(GOOD_LEAVES)
JSON = nested(GOOD_LEAVES | HOSTILE_NUMBERS)  # NaN, infinities and huge integers too
GOOD_DATA = st.dictionaries(KEYS, GOOD_JSON, max_size=4)
DATA = st.dictionaries(KEYS, JSON, max_size=4)
# ids made of what subjects (. * > space) and URLs (/ % ~ ..) treat specially, so near-collisions are tried
TRICKY_IDS = st.text(alphabet="ab.-_~*> /%2EF\x00é", min_size=0, max_size=12)
GOOD_IDS = TRICKY_IDS.filter(bool) | st.text(min_size=1, max_size=40)
ANY_IDS = st.text(alphabet=st.characters(exclude_categories=()), min_size=0, max_size=40)  # surrogates and control characters too
ACTOR_IDS = TRICKY_IDS | ANY_IDS | st.text(min_size=250, max_size=260)
GOOD_TYPES = st.from_regex(r"[A-Z][A-Za-z0-9.]{0,20}", fullmatch=True) | st.text(min_size=1, max_size=20).filter(lambda t: t.isprintable() and t == t.strip())
EVENT_TYPES = GOOD_TYPES | st.text(max_size=30) | st.sampled_from(["Placed", " Placed", "Placed\n", "", "x" * 257, "Ünïcödé", "a\u2028b", "\ud800"])
# half of the events are valid throughout (so stored ones are checked too), half anything
EVENTS = st.fixed_dictionaries({"actor_id": GOOD_IDS, "event_type": GOOD_TYPES, "data": GOOD_DATA, "metadata": st.dictionaries(KEYS, GOOD_JSON, max_size=2)}) | st.fixed_dictionaries(
    {"actor_id": ACTOR_IDS, "event_type": EVENT_TYPES, "data": DATA, "metadata": st.dictionaries(KEYS, JSON, max_size=2)}
)
GOOD_BATCH = st.lists(st.tuples(GOOD_TYPES, GOOD_DATA), min_size=1, max_size=5)
ONE_BAD_IN_GOOD = st.builds(lambda good, bad, i: [*good[:i], bad, *good[i:]], GOOD_BATCH, st.tuples(EVENT_TYPES, DATA), st.integers(0, 5))
BATCHES = GOOD_BATCH | ONE_BAD_IN_GOOD | st.lists(st.tuples(EVENT_TYPES, DATA), min_size=1, max_size=5)


def encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# ----- what the stream holds -----


def last_position(store: EventStore) -> int:
    """The stream position of the newest message (0 when empty)."""
    position = 0
    while True:
        page = store.read_all_with_errors(position, limit=1000)
        positions = [e.position or 0 for e in page.events] + [m.position for m in page.errors]
        if not positions:
            return position
        position = max(positions)


def written_after(store: EventStore, position: int) -> list[Event]:
    """Every message stored after a position, as events; a malformed one fails the test."""
    page = store.read_all_with_errors(position, limit=1000)
    assert not page.errors, f"malformed messages were stored: {page.errors}"
    return page.events


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON values (a float NaN is never equal: it must not have been stored)."""
    if isinstance(a, float) and math.isnan(a):
        return False
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


# ----- the store -----


@FUZZ
@given(fields=EVENTS)
@example(fields={"actor_id": "a.b", "event_type": "Placed", "data": {"n": math.nan}, "metadata": {}})
@example(fields={"actor_id": "a~2Eb", "event_type": "Placed", "data": {}, "metadata": {"n": -math.inf}})
@example(fields={"actor_id": "order-1", "event_type": "Placed", "data": {"n": 2**14290}, "metadata": {}})
@example(fields={"actor_id": "order-1", "event_type": "Placed", "data": {"big": "x" * 2_000_000}, "metadata": {}})
def test_the_store_keeps_an_event_exactly_or_refuses_it_and_stores_nothing(fields: dict[str, Any]) -> None:
    actor_id = fields["actor_id"]
    store = get_store()
    before = last_position(store)
    try:
        version = store.get_latest_version(actor_id) + 1
    except InvalidActorId:
        version = 1
    sent = Event(version=version, **fields)
    try:
        saved = store.save_event(sent)
    except REFUSED as e:
        event(f"refused: {type(e).__name__}")
        assert written_after(store, before) == [], "a refused event left something in the stream"
        return
    event("stored")
    written = written_after(store, before)
    assert [(e.id, e.actor_id, e.version) for e in written] == [(saved.id, actor_id, version)], "the write touched another actor, or stored more than its event"
    read = store.get_events(actor_id)
    assert all(e.actor_id == actor_id for e in read)
    assert read[-1].id == sent.id and read[-1].event_type == sent.event_type
    assert same_json(sent.data, read[-1].data) and same_json(sent.metadata, read[-1].metadata), "the store changed the event's data"


@FUZZ
@given(actor_id=GOOD_IDS, batch=BATCHES)
@example(actor_id="a", batch=[("Placed", {"n": 1}), ("Paid", {"n": math.nan})])
@example(actor_id="a", batch=[("Placed", {"n": 1}), ("Paid", {"big": "x" * 2_000_000})])
def test_an_append_stores_all_its_events_or_none(actor_id: str, batch: list[tuple[str, dict[str, Any]]]) -> None:
    store = get_store()
    before = last_position(store)
    expected = store.get_latest_version(actor_id)
    events = [Event(event_type=t, data=d) for t, d in batch]
    try:
        stored = store.append(actor_id, events, expected_version=expected)
    except REFUSED as e:
        event(f"refused: {type(e).__name__}")
        assert written_after(store, before) == [], "a refused append stored part of its events"
        assert store.get_latest_version(actor_id) == expected
        return
    event("stored")
    written = written_after(store, before)
    assert [(e.actor_id, e.version, e.id) for e in written] == [(actor_id, expected + i + 1, ev.id) for i, ev in enumerate(events)]
    assert [e.id for e in stored] == [e.id for e in events]
    assert all(same_json(ev.data, w.data) for ev, w in zip(events, written))


@FUZZ
@given(ids=st.lists(TRICKY_IDS.filter(bool), min_size=2, max_size=4, unique=True))
def test_actors_whose_ids_look_alike_never_share_events(ids: list[str]) -> None:
    store = get_store()
    mine: dict[str, list[str]] = {}
    for actor_id in ids:
        saved = store.save_event(Event(actor_id=actor_id, event_type="Happened", version=store.get_latest_version(actor_id) + 1, data={"by": actor_id}))
        mine.setdefault(actor_id, []).append(saved.id)
    for actor_id in ids:
        events = store.get_events(actor_id)
        assert {e.actor_id for e in events} == {actor_id}
        assert {e.data["by"] for e in events} == {actor_id}, f"{actor_id!r} reads another actor's events"
        assert set(mine[actor_id]) <= {e.id for e in events}


@FUZZ
@given(state=GOOD_DATA | DATA)
@example(state={"n": math.nan})
@example(state={"n": 2**14290})
def test_a_snapshot_is_kept_exactly_or_refused_without_changing_the_latest(state: dict[str, Any]) -> None:
    store = get_store()
    if store.get_latest_version("snap-1") == 0:
        store.save_event(Event(actor_id="snap-1", event_type="Opened", version=1))
    try:
        before = store.get_latest_snapshot("snap-1")
    except SnapshotNotFound:
        before = None
    try:
        store.save_snapshot(ActorSnapshot(actor_id="snap-1", version=1, state=state))
    except REFUSED as e:
        event(f"refused: {type(e).__name__}")
        after = store.get_latest_snapshot("snap-1") if before else None
        assert after == before, "a refused snapshot replaced the latest"
        return
    event("stored")
    assert same_json(state, store.get_latest_snapshot("snap-1").state)


@pytest.mark.parametrize("data", [{1: "a", "1": "b"}, {None: 1, "null": 2}, {1.5: "x"}])
def test_data_with_keys_json_would_change_is_refused(data: dict[Any, Any]) -> None:
    store = get_store()
    before = last_position(store)
    with pytest.raises(InvalidEvent):
        store.save_event(Event(actor_id="keys-1", event_type="Happened", version=store.get_latest_version("keys-1") + 1, data=data))
    assert written_after(store, before) == []


def nested_lists(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def test_data_nested_deeper_than_json_can_write_is_refused() -> None:
    store = get_store()
    before = last_position(store)
    with pytest.raises(InvalidEvent):
        store.save_event(Event(actor_id="deep-1", event_type="Happened", version=1, data={"x": nested_lists(1_100)}))
    assert written_after(store, before) == []


def test_the_admin_shows_an_event_the_store_accepted_however_deep(admin_client: Client) -> None:
    get_store().save_event(Event(actor_id="deep-2", event_type="Happened", version=1, data={"x": nested_lists(900)}))  # the API accepts this depth too
    assert admin_client.get(reverse("admin:django_eventstore_actor_actor", args=[actor_segment("deep-2")])).status_code == 200


# ----- the REST API -----


@pytest.fixture
def admin(client: Client, django_user_model: Any) -> Client:
    client.force_login(django_user_model.objects.create_superuser("fuzz-admin", password="x"))
    return client


def events_url(actor_id: str) -> str:
    return f"{API}actors/{actor_segment(actor_id)}/events/"


GOOD_BODIES = st.fixed_dictionaries({"event_type": GOOD_TYPES, "version": st.just(1), "data": GOOD_DATA}) | GOOD_BATCH.map(
    lambda batch: [{"event_type": t, "version": v, "data": d} for v, (t, d) in enumerate(batch, 1)]
)
JSON_BODIES = st.one_of(
    st.fixed_dictionaries({"event_type": EVENT_TYPES, "version": st.integers(min_value=-2, max_value=3) | HUGE, "data": JSON}),
    st.fixed_dictionaries({"event_type": EVENT_TYPES, "version": st.just(1), "data": DATA}, optional={"id": st.text(max_size=10), "metadata": JSON, "actor_id": ACTOR_IDS.filter(encodable)}),
    st.lists(st.fixed_dictionaries({"event_type": EVENT_TYPES, "version": st.integers(min_value=1, max_value=3), "data": DATA}), max_size=3),
    JSON,
)
RAW_BODIES = st.sampled_from(
    [
        b"",
        b"{",
        b"null",
        b"[]",
        b'{"event_type": "A", "event_type": "B", "version": 1, "data": {}}',
        b'{"event_type": "A", "version": 1, "data": {"k": 1, "k": 2}}',
        b'{"event_type": "A", "version": 1, "data": {"n": NaN}}',
        b'{"event_type": "A", "version": 1, "data": {"n": -Infinity}}',
        b'{"event_type": "A", "version": 1e0, "data": {}}',
        b'{"event_type": "A", "version": 1, "data": {"n": 1' + b"0" * 5000 + b"}}",
        b'{"event_type": "A", "version": 1, "data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"event_type": "\xff\xfe", "version": 1, "data": {}}',
        b'{"event_type": "\\ud800", "version": 1, "data": {}}',
        b"\xef\xbb\xbf{}",
    ]
) | st.binary(max_size=64)


def _body(value: Any) -> bytes:
    """A request body: raw bytes as they are, else the value as JSON (integers of any size written out)."""
    if isinstance(value, bytes):
        return value
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)  # the client may send what Python would not print by default; the server must cope
    try:
        return json.dumps(value).encode()
    finally:
        sys.set_int_max_str_digits(limit)


CONTENT_TYPES = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain"])


@FUZZ
@given(actor_id=GOOD_IDS | ACTOR_IDS.filter(encodable), body=GOOD_BODIES | JSON_BODIES | RAW_BODIES, content_type=CONTENT_TYPES)
def test_posting_anything_never_answers_500_and_touches_only_its_actor(admin: Client, actor_id: str, body: Any, content_type: str) -> None:
    store = get_store()
    before = last_position(store)
    response = admin.post(events_url(actor_id), _body(body), content_type=content_type)
    event(f"status {response.status_code}")
    assert response.status_code in (201, 400, 409, 413, 415) or (actor_id == "" and response.status_code == 404), (response.status_code, response.content[:300])
    written = written_after(store, before)
    if response.status_code != 201:
        assert written == [], f"a {response.status_code} stored something"
        return
    answer = response.json()
    answered = answer if isinstance(answer, list) else [answer]
    assert [(e.id, e.actor_id) for e in written] == [(a["id"], actor_id) for a in answered], "the POST wrote another actor, or other events than it answered"
    if not isinstance(body, bytes):
        sent = body if isinstance(body, list) else [body]
        assert all(same_json(s["data"], a["data"]) for s, a in zip(sent, answered, strict=True)), "the stored data differs from the posted data"
    listed = admin.get(events_url(actor_id) + "?limit=1000").json()["results"]
    assert {e["actor_id"] for e in listed} == {actor_id}
    assert [e["data"] for e in listed[-len(answered) :]] == [a["data"] for a in answered]


# segments as a client may send them: valid encodings, broken ones (~zz, ~C3 alone, lower-case hex), percent-escapes, dot segments
SEGMENTS = (
    st.text(alphabet="a-_~.%2EFCzf3/", min_size=1, max_size=10)
    | ANY_IDS.filter(lambda s: bool(s) and encodable(s)).map(actor_segment)
    | st.sampled_from(["~", "~2", "~zz", "~C3", "~2e", "..", ".", "~2E~2E", "%2F", "a%2Fb", "~FF", "~00", "x" * 2000])
)
QUERY_VALUES = st.text(max_size=8).filter(encodable) | st.sampled_from(["-1", "0", "1e3", "99999999999999999999999", "NaN", "1001"])


@FUZZ
@given(segment=SEGMENTS, route=st.sampled_from(["", "events/", "version/", "snapshot/"]), from_version=QUERY_VALUES, limit=QUERY_VALUES)
def test_reading_any_segment_never_answers_500_and_returns_only_that_actor(admin: Client, segment: str, route: str, from_version: str, limit: str) -> None:
    store = get_store()
    store.save_event(Event(actor_id="a.b", event_type="Seeded", version=store.get_latest_version("a.b") + 1))  # a neighbour to leak
    path = f"{API}actors/{quote(segment, safe='~/')}/{route}?" + f"from_version={quote(from_version)}&limit={quote(limit)}"
    response = admin.get(path)
    event(f"status {response.status_code}")
    assert response.status_code in (200, 400, 404), (path, response.status_code, response.content[:300])
    if response.status_code == 200 and route in ("", "events/", "version/"):
        body = response.json()
        ids = {e["actor_id"] for e in body["results"]} if route == "events/" else {body["actor_id"]}
        assert ids <= {actor_id_from_segment(segment)}, f"{path} answered about {ids}"


@FUZZ
@given(params=st.dictionaries(st.sampled_from(["type", "prefix", "after", "limit", "event_type"]), QUERY_VALUES, max_size=4), route=st.sampled_from(["actors/", "events/"]))
def test_listing_with_any_query_never_answers_500(admin: Client, params: dict[str, str], route: str) -> None:
    response = admin.get(API + route, params)
    event(f"status {response.status_code}")
    assert response.status_code in (200, 400), (params, response.status_code, response.content[:300])


@FUZZ
@given(body=st.fixed_dictionaries({"version": st.just(1), "state": GOOD_DATA}) | st.fixed_dictionaries({"version": st.integers(min_value=-1, max_value=3) | HUGE, "state": JSON}) | JSON | RAW_BODIES)
def test_putting_any_snapshot_never_answers_500_and_changes_nothing_when_refused(admin: Client, body: Any) -> None:
    store = get_store()
    if store.get_latest_version("snap-2") == 0:
        store.save_event(Event(actor_id="snap-2", event_type="Opened", version=1))
    url = f"{API}actors/snap-2/snapshot/"
    before = admin.get(url)
    response = admin.put(url, _body(body), content_type="application/json")
    event(f"status {response.status_code}")
    assert response.status_code in (200, 400, 404, 409, 413), (response.status_code, response.content[:300])
    if response.status_code != 200:
        after = admin.get(url)
        assert (after.status_code, after.content) == (before.status_code, before.content), "a refused snapshot changed the latest"
