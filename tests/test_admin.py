"""The "Actors" admin pages through the Django test client, against the real nats-server."""

from __future__ import annotations

import html as html_lib
import json
import re

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from django_eventstore import ActorSnapshot, Event, get_store
from django_eventstore.actor_urls import actor_segment
from django_eventstore.admin_views import cluster_text
from tests.conftest import publish_raw

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:django_eventstore_actor_changelist"
OVERVIEW = "admin:django_eventstore_actor_overview"


def actor_url(actor_id: str) -> str:
    return reverse("admin:django_eventstore_actor_actor", args=[actor_segment(actor_id)])


def add_events(actor_id: str, count: int, event_type: str = "Happened", start: int = 0) -> None:
    """Store ``count`` events after version ``start``, in batches the store accepts."""
    store = get_store()
    version = start
    while version < start + count:
        n = min(1000, start + count - version)
        store.append(actor_id, [Event(event_type=event_type, data={"n": version + i + 1}) for i in range(n)], version)
        version += n


def actor_ids_in(html: str) -> list[str]:
    """The actor ids of the changelist's rows, in page order (as the page shows them, unescaped)."""
    return [html_lib.unescape(m) for m in re.findall(r'<th class="field-actor_id"><a href="[^"]*">([^<]*)</a>', html)]


def versions_in(html: str) -> list[str]:
    """The version column of the actor page's table; "—" for a malformed row."""
    return re.findall(r'<tr class="(?:event|malformed)">\s*<td class="numeric">([^<]*)</td>', html)


@pytest.fixture
def staff_viewer(db) -> User:
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_actor", content_type__app_label="django_eventstore"))
    return user


@pytest.fixture
def viewer_client(staff_viewer: User) -> Client:
    client = Client()
    client.force_login(staff_viewer)
    return client


# ----- changelist -----


def test_index_lists_actors_without_add_link(admin_client):
    response = admin_client.get(reverse("admin:index"))
    html = response.content.decode()
    assert reverse(CHANGELIST) in html
    assert ">Actors<" in html
    assert "django_eventstore/actor/add/" not in html


def test_changelist_shows_actors_versions_snapshots_and_links(admin_client):
    add_events("order-2", 3)
    add_events("order-1", 1)
    add_events("user-9", 2)
    get_store().save_snapshot(ActorSnapshot(actor_id="order-2", version=2, state={"total": 5}))
    response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    html = response.content.decode()
    assert actor_ids_in(html) == ["order-1", "order-2", "user-9"]
    row = re.search(r'field-actor_id"><a href="([^"]*)">order-2</a></th>(.*?)</tr>', html, re.S)
    assert row.group(1) == actor_url("order-2")
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row.group(2))
    last_at = get_store().get_events("order-2")[-1].timestamp.strftime("%Y-%m-%d %H:%M:%S")
    assert cells == ["order", "3", "2", last_at]
    user_cells = re.findall(r"<td[^>]*>([^<]*)</td>", re.search(r">user-9</a></th>(.*?)</tr>", html, re.S).group(1))
    assert user_cells[:3] == ["user", "2", "none"]
    assert "3 actors" in html
    assert reverse(OVERVIEW) in html


def test_changelist_filters_by_type_from_the_sidebar(admin_client):
    for actor in ("order-1", "order-2", "user-1", "solo"):
        add_events(actor, 1)
    html = admin_client.get(reverse(CHANGELIST)).content.decode()
    sidebar = html[html.index('id="changelist-filter"') :]
    assert re.findall(r'<a href="\?type=([^"]*)">', sidebar) == ["_", "order", "user"]
    filtered = admin_client.get(reverse(CHANGELIST), {"type": "order"}).content.decode()
    assert actor_ids_in(filtered) == ["order-1", "order-2"]
    assert '<li class="selected"><a href="?type=order">order</a>' in filtered
    assert "2 actors" in filtered
    assert actor_ids_in(admin_client.get(reverse(CHANGELIST), {"type": "_"}).content.decode()) == ["solo"]
    assert actor_ids_in(admin_client.get(reverse(CHANGELIST), {"type": "nothing"}).content.decode()) == []


def test_changelist_searches_by_id_prefix_with_q(admin_client):
    for actor in ("order-10", "order-11", "order-20", "user-10"):
        add_events(actor, 1)
    html = admin_client.get(reverse(CHANGELIST), {"q": "order-1"}).content.decode()
    assert actor_ids_in(html) == ["order-10", "order-11"]
    assert 'value="order-1"' in html
    both = admin_client.get(reverse(CHANGELIST), {"q": "order-2", "type": "order"}).content.decode()
    assert actor_ids_in(both) == ["order-20"]
    assert actor_ids_in(admin_client.get(reverse(CHANGELIST), {"q": "10", "type": "order"}).content.decode()) == []


def test_changelist_pages_by_100_with_p(admin_client):
    store = get_store()
    for i in range(205):
        store.save_event(Event(actor_id=f"item-{i:03d}", event_type="Made", version=1))
    first = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert actor_ids_in(first) == [f"item-{i:03d}" for i in range(100)]
    assert "205 actors" in first
    assert '<span class="this-page">1</span>' in first
    assert 'href="?p=3"' in first
    third = admin_client.get(reverse(CHANGELIST), {"p": "3"}).content.decode()
    assert actor_ids_in(third) == [f"item-{i:03d}" for i in range(200, 205)]
    assert '<span class="this-page">3</span>' in third
    searched = admin_client.get(reverse(CHANGELIST), {"q": "item-1", "p": "1"}).content.decode()
    assert len(actor_ids_in(searched)) == 100
    assert 'class="this-page"' not in searched  # one page: no page links
    for bad in ("4", "0", "x", "-1"):
        assert admin_client.get(reverse(CHANGELIST), {"p": bad}).status_code == 404


# ----- actor page -----


def test_actor_page_shows_latest_version_snapshot_and_pretty_events(admin_client):
    store = get_store()
    store.append("order-7", [Event(event_type="Placed", data={"items": [1, 2], "total": 3}, metadata={"user": "ann"}), Event(event_type="Paid", data={})], 0)
    store.save_snapshot(ActorSnapshot(actor_id="order-7", version=1, state={"status": "placed", "lines": 2}))
    response = admin_client.get(actor_url("order-7"))
    assert response.status_code == 200
    html = response.content.decode()
    assert '<dd id="latest-version">2</dd>' in html
    assert "version 1, taken" in html
    assert json.dumps({"lines": 2, "status": "placed"}, indent=2, sort_keys=True).replace('"', "&quot;") in html
    assert versions_in(html) == ["1", "2"]
    preview = '<code class="preview">{&quot;items&quot;: [1, 2], &quot;total&quot;: 3}</code></summary><pre>'
    assert preview + json.dumps({"items": [1, 2], "total": 3}, indent=2, sort_keys=True).replace('"', "&quot;") in html
    assert "&quot;user&quot;: &quot;ann&quot;" in html
    events = store.get_events("order-7")
    assert events[0].id in html and events[1].id in html
    assert events[0].timestamp.strftime("%Y-%m-%d %H:%M:%S.%f") in html  # shown in UTC, whatever TIME_ZONE is
    snapshot = store.get_latest_snapshot("order-7")
    assert f'taken {snapshot.timestamp.strftime("%Y-%m-%d %H:%M:%S.%f")} UTC' in html
    assert "Placed" in html and "Paid" in html


def test_actor_page_without_snapshot_says_none(admin_client):
    add_events("user-1", 1)
    html = admin_client.get(actor_url("user-1")).content.decode()
    assert '<dd id="snapshot">none</dd>' in html


def test_actor_events_page_oldest_first_and_newest_first(admin_client):
    add_events("long-1", 120)
    first = admin_client.get(actor_url("long-1")).content.decode()
    assert versions_in(first) == [str(v) for v in range(1, 51)]
    assert "Events 1–50 of 120" in first
    nxt = re.search(r'<a href="([^"]*)" class="newer">', first).group(1).replace("&amp;", "&")
    second = admin_client.get(actor_url("long-1") + nxt).content.decode()
    assert versions_in(second) == [str(v) for v in range(51, 101)]
    last = re.search(r'<a href="([^"]*)" class="newest">', second).group(1).replace("&amp;", "&")
    tail = admin_client.get(actor_url("long-1") + last).content.decode()
    assert versions_in(tail) == [str(v) for v in range(71, 121)]
    assert 'class="newer"' not in tail
    newest = admin_client.get(actor_url("long-1"), {"order": "desc"}).content.decode()
    assert versions_in(newest) == [str(v) for v in range(120, 70, -1)]
    assert 'class="newer"' not in newest
    older = re.search(r'<a href="([^"]*)" class="older">', newest).group(1).replace("&amp;", "&")
    page2 = admin_client.get(actor_url("long-1") + older).content.decode()
    assert versions_in(page2) == [str(v) for v in range(70, 20, -1)]
    oldest = re.search(r'<a href="([^"]*)" class="oldest">', page2).group(1).replace("&amp;", "&")
    assert versions_in(admin_client.get(actor_url("long-1") + oldest).content.decode()) == [str(v) for v in range(50, 0, -1)]


def test_actor_events_from_version_jump(admin_client):
    add_events("long-2", 1500)
    html = admin_client.get(actor_url("long-2"), {"from": "1400"}).content.decode()
    assert versions_in(html) == [str(v) for v in range(1400, 1450)]
    desc = admin_client.get(actor_url("long-2"), {"from": "1400", "order": "desc"}).content.decode()
    assert versions_in(desc) == [str(v) for v in range(1400, 1350, -1)]
    beyond = admin_client.get(actor_url("long-2"), {"from": "9999"}).content.decode()
    assert versions_in(beyond) == ["1500"]
    assert "There is no version 9999 (from): the latest version is 1500, so the page shows the latest events." in beyond
    assert "events-notice" not in html and "events-notice" not in desc
    assert admin_client.get(actor_url("long-2"), {"from": "abc"}).status_code == 404


def test_malformed_messages_are_rows_shown_once_across_pages(admin_client, nats_url):
    store = get_store()
    store.setup()
    subject = store.engine.subjects.event_subject("order-9")
    publish_raw(nats_url, subject, b"not json <b>")
    add_events("order-9", 60)
    publish_raw(nats_url, subject, b'{"version": "x"}', {"Es-Version": "61"})
    add_events("order-9", 1, start=60)
    publish_raw(nats_url, subject, b"trailing junk")
    first = admin_client.get(actor_url("order-9"))
    assert first.status_code == 200
    html = first.content.decode()
    assert versions_in(html) == ["—"] + [str(v) for v in range(1, 51)]
    assert "body is not JSON" in html
    assert "not json &lt;b&gt;" in html
    second = admin_client.get(actor_url("order-9"), {"from": "51"}).content.decode()
    assert versions_in(second) == [str(v) for v in range(51, 61)] + ["—", "61", "—"]
    assert "body has no &#x27;eventType&#x27; field" in second and "trailing junk" in second
    newest = admin_client.get(actor_url("order-9"), {"order": "desc"}).content.decode()
    assert versions_in(newest) == ["—", "61", "—"] + [str(v) for v in range(60, 11, -1)]
    assert '<dd id="latest-version">61</dd>' in newest


def event_rows(html: str) -> list[tuple[str, int]]:
    """The actor page's rows in page order: ("event", version) or ("malformed", stream position)."""
    rows = []
    for kind, body in re.findall(r'<tr class="(event|malformed)">(.*?)</tr>', html, re.DOTALL):
        version, position = re.findall(r'<td class="numeric">([^<]*)</td>', body)
        rows.append((kind, int(version) if kind == "event" else int(position)))
    return rows


def pager_link(html: str, name: str) -> str | None:
    found = re.search(rf'<a href="([^"]*)" class="{name}">', html)
    return html_lib.unescape(found.group(1)) if found else None


def walk(client, actor_id: str, start: str, direction: str) -> list[list[tuple[str, int]]]:
    """Follow the "older" or "newer" link from the page at ``start`` until there is none; each page's rows."""
    pages, url = [], actor_url(actor_id) + start
    while url is not None:
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        rows = event_rows(html)
        versions = [v for kind, v in rows if kind == "event"]
        assert 0 < len(versions) <= 50
        shown = re.search(r"Events (\d+)–(\d+) of (\d+)", html).groups()
        assert [int(shown[0]), int(shown[1])] == [min(versions), max(versions)]
        assert sorted(versions) == list(range(min(versions), max(versions) + 1))
        pages.append(rows)
        link = pager_link(html, direction)
        url = actor_url(actor_id) + link if link else None
        assert len(pages) <= 10
    return pages


def test_paging_either_way_in_either_order_shows_every_row_exactly_once(admin_client, nats_url):
    store = get_store()
    store.setup()
    actor = "walk-1"
    subject = store.engine.subjects.event_subject(actor)
    # malformed messages after these versions (0: before the first event), on and around page edges
    after = [0, 0, 1, 19, 20, 21, 30, 31, 49, 50, 50, 51, 70, 71, 80, 80, 81, 99, 100, 101, 110, 120, 129, 130, 130]
    malformed, version = [], 0
    for v in after:
        if v > version:
            add_events(actor, v - version, start=version)
            version = v
        malformed.append(publish_raw(nats_url, subject, f"junk after {v}".encode()))
    expected = sorted([("event", v) for v in range(1, 131)] + [("malformed", p) for p in malformed])

    def pages_of(order: str, end: str) -> str:
        base = "?order=desc" if order == "desc" else ""
        return pager_link(admin_client.get(actor_url(actor) + base).content.decode(), end) if end else base

    walks = {
        ("asc", "newer"): walk(admin_client, actor, pages_of("asc", ""), "newer"),
        ("asc", "older"): walk(admin_client, actor, pages_of("asc", "newest"), "older"),
        ("desc", "older"): walk(admin_client, actor, pages_of("desc", ""), "older"),
        ("desc", "newer"): walk(admin_client, actor, pages_of("desc", "oldest"), "newer"),
    }
    for (order, direction), pages in walks.items():
        rows = [row for page in pages for row in page]
        assert len(rows) == len(set(rows)), (order, direction)  # none twice
        assert sorted(rows) == expected, (order, direction)  # none missing
        for page in pages:
            positions = [p for kind, p in page if kind == "malformed"]
            assert positions == sorted(positions, reverse=order == "desc")
    first_versions = {key: [[v for kind, v in page if kind == "event"] for page in pages] for key, pages in walks.items()}
    assert [(p[0], p[-1]) for p in first_versions[("asc", "newer")]] == [(1, 50), (51, 100), (101, 130)]
    assert [(p[0], p[-1]) for p in first_versions[("asc", "older")]] == [(81, 130), (31, 80), (1, 30)]
    assert [(p[0], p[-1]) for p in first_versions[("desc", "older")]] == [(130, 81), (80, 31), (30, 1)]
    assert [(p[0], p[-1]) for p in first_versions[("desc", "newer")]] == [(50, 1), (100, 51), (130, 101)]


def test_newest_first_from_a_low_version_shows_only_that_far(admin_client):
    add_events("long-3", 120)
    html = admin_client.get(actor_url("long-3"), {"order": "desc", "from": "20"}).content.decode()
    assert versions_in(html) == [str(v) for v in range(20, 0, -1)]
    assert "Events 1–20 of 120" in html
    assert 'class="older"' not in html
    newer = admin_client.get(actor_url("long-3") + pager_link(html, "newer")).content.decode()
    assert versions_in(newer) == [str(v) for v in range(70, 20, -1)]
    oldest_first = admin_client.get(actor_url("long-3"), {"to": "20"}).content.decode()
    assert versions_in(oldest_first) == [str(v) for v in range(1, 21)]
    assert admin_client.get(actor_url("long-3"), {"from": "5", "to": "20"}).status_code == 404


def test_malformed_header_named_items_keys_values_is_shown(admin_client, nats_url):
    store = get_store()
    store.setup()
    publish_raw(nats_url, store.engine.subjects.event_subject("hdr-1"), b"junk", {"items": "xy", "keys": "z", "values": "w"})
    response = admin_client.get(actor_url("hdr-1"))
    assert response.status_code == 200
    html = response.content.decode()
    assert versions_in(html) == ["—"]
    for line in ("items: xy", "keys: z", "values: w"):
        assert line in html


@pytest.mark.parametrize("value", ["%C2%B2", "%D9%A3", "1" * 5000, "1" * 19], ids=["superscript-2", "arabic-3", "5000-digits", "19-digits"])
def test_non_ascii_and_overlong_numbers_are_404(admin_client, value):
    add_events("order-1", 3)
    assert admin_client.get(reverse(CHANGELIST) + "?p=" + value).status_code == 404
    for name in ("from", "to"):
        assert admin_client.get(actor_url("order-1") + f"?{name}={value}").status_code == 404
        assert admin_client.get(actor_url("order-1") + f"?order=desc&{name}={value}").status_code == 404


def test_largest_accepted_numbers_do_not_fail(admin_client):
    add_events("order-1", 3)
    big = "9" * 18
    assert admin_client.get(reverse(CHANGELIST), {"p": big}).status_code == 404  # no such page
    for params in ({"from": big}, {"to": big}, {"from": big, "order": "desc"}, {"to": big, "order": "desc"}):
        response = admin_client.get(actor_url("order-1"), params)
        assert response.status_code == 200, params
        assert versions_in(response.content.decode())


def test_non_canonical_segments_are_404(admin_client):
    add_events("A", 1)
    add_events("x-1", 1)
    add_events("a/b", 1)
    base = reverse(CHANGELIST)
    assert admin_client.get(base + "A/").status_code == 200
    assert admin_client.get(base + "a~2Fb/").status_code == 200
    for segment in ("~41", "x~2D1", "~78-1", "a~2fb"):
        assert admin_client.get(base + segment + "/").status_code == 404, segment


def test_actor_with_only_malformed_messages_shows_them(admin_client, nats_url):
    store = get_store()
    store.setup()
    publish_raw(nats_url, store.engine.subjects.event_subject("ghost-1"), b"\xff\xfe")
    html = admin_client.get(actor_url("ghost-1")).content.decode()
    assert versions_in(html) == ["—"]
    assert '<dd id="latest-version">0</dd>' in html


def test_unknown_actor_goes_back_to_the_list_with_the_admins_message(admin_client):
    response = admin_client.get(actor_url("order-<404>"), follow=True)
    assert response.redirect_chain == [(reverse(CHANGELIST), 302)]
    assert escape("Actor with ID “order-<404>” doesn’t exist. Perhaps it was deleted?") in response.content.decode()


def test_ids_without_a_dash_read_as_no_type(admin_client):
    add_events("plain", 1)
    add_events("order-1", 1)
    html = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert '<td class="field-actor_type">(no type)</td>' in html and ">_<" not in html
    assert re.search(r'<a href="\?type=_"[^>]*>\(no type\)</a>', html), html


def test_bad_segment_is_404(admin_client):
    add_events("order-1", 1)
    base = reverse(CHANGELIST)
    assert admin_client.get(base + "a~ZZ/").status_code == 404
    assert admin_client.get(base + "~FF/").status_code == 404
    assert admin_client.get(base + ("x" * 300) + "/").status_code == 404


# hostile in URLs: slashes, percent-escapes, dot segments, spaces, non-ASCII, query and fragment marks, names of routes
ODD_IDS = ["a/b", "a%2Fb", "..", ".", "a b", "é", "?#", "stream/overview", "dots.in.id", "ünïcödé-ß", "100%-sure", "x~41", "overview", "stream", "-lead", "p?q=1&r#s"]


def test_odd_actor_ids_link_and_load_with_the_same_segment_as_the_api(admin_client):
    for actor in ODD_IDS:
        add_events(actor, 2, event_type="Odd")
    html = admin_client.get(reverse(CHANGELIST)).content.decode()
    links = {html_lib.unescape(name): href for href, name in re.findall(r'<th class="field-actor_id"><a href="([^"]*)">([^<]*)</a>', html)}
    assert sorted(links) == sorted(ODD_IDS)
    for actor, href in links.items():
        assert href == actor_url(actor)
        segment = href.rstrip("/").rsplit("/", 1)[1]
        assert segment == actor_segment(actor) and "%" not in segment and segment not in (".", "..")
        page = admin_client.get(href)
        assert page.status_code == 200, actor
        assert f'<dd id="actor-id">{escape(actor)}</dd>' in page.content.decode()
        assert versions_in(page.content.decode()) == ["1", "2"]
        assert admin_client.get(f"/api/eventstore/actors/{segment}/").json()["actor_id"] == actor


def test_script_in_ids_types_and_data_renders_as_text(admin_client):
    evil = "<script>alert(1)</script>"
    actor = f"{evil}-1"
    get_store().save_event(Event(actor_id=actor, event_type=evil, version=1, data={evil: evil}))
    get_store().save_snapshot(ActorSnapshot(actor_id=actor, version=1, state={"s": evil}))
    pages = [
        admin_client.get(reverse(CHANGELIST)).content.decode(),
        admin_client.get(reverse(CHANGELIST), {"q": evil, "type": evil}).content.decode(),
        admin_client.get(actor_url(actor)).content.decode(),
    ]
    for html in pages:
        assert "<script>alert" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert actor_ids_in(pages[1]) == [actor]


# ----- overview -----


def test_overview_shows_server_and_both_streams(admin_client, stream_name, nats_url):
    add_events("order-1", 3)
    add_events("user-1", 2)
    get_store().save_snapshot(ActorSnapshot(actor_id="user-1", version=2, state={}))
    response = admin_client.get(reverse(OVERVIEW))
    assert response.status_code == 200
    html = response.content.decode()
    summary = get_store().server_summary()
    assert f'<dd id="server-version">{escape(summary.version)}</dd>' in html
    assert f'<dd id="server-url">{summary.url}</dd>' in html
    rows = re.findall(r'<tr class="stream">\s*<th>([^<]*)</th>(.*?)</tr>', html, re.S)
    assert [name for name, _ in rows] == [stream_name, f"{stream_name}_SNAPSHOTS"]
    events_cells = re.findall(r"<td[^>]*>([^<]*)</td>", rows[0][1])
    assert events_cells[1:7] == ["5", events_cells[2], "1", "5", "2", "1"]
    assert events_cells[7] == "file"
    snapshot_cells = re.findall(r"<td[^>]*>([^<]*)</td>", rows[1][1])
    assert snapshot_cells[1] == "1" and snapshot_cells[5] == "1"
    assert events_cells[8] == "not clustered"
    assert reverse(CHANGELIST) in html


def test_cluster_text_names_leader_and_replicas():
    cluster = {"name": "east", "leader": "n1", "replicas": [{"name": "n2", "current": True}, {"name": "n3", "current": False}]}
    assert cluster_text(cluster) == "east: leader n1; replicas: n2 current, n3 lagging"
    assert cluster_text({"name": "east"}) == "east: leader none"
    assert cluster_text({"leader": "NABC"}) == "not clustered"
    behind = {"name": "east", "leader": "N" * 56, "replicas": [{"name": "n2", "current": False, "lag": 1200}, {"name": "n3", "offline": True}]}
    assert cluster_text(behind) == f"east: leader {'N' * 56}; replicas: n2 lag 1,200, n3 offline"
    assert cluster_text(behind, width=12) == "east: leader NNNNNNNNN...; replicas: n2 lag 1,200, n3 offline"


# ----- permissions and read-only -----


def all_pages() -> list[str]:
    return [reverse(CHANGELIST), reverse(OVERVIEW), actor_url("order-1")]


def test_anonymous_users_are_sent_to_login(client):
    add_events("order-1", 1)
    for url in all_pages():
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_staff_without_view_permission_get_403(client):
    add_events("order-1", 1)
    client.force_login(User.objects.create_user("clerk", password="pw", is_staff=True))
    for url in all_pages():
        assert client.get(url).status_code == 403
    assert reverse(CHANGELIST) not in client.get(reverse("admin:index")).content.decode()


def test_staff_with_view_permission_see_the_pages(viewer_client):
    add_events("order-1", 1)
    for url in all_pages():
        assert viewer_client.get(url).status_code == 200
    assert reverse(CHANGELIST) in viewer_client.get(reverse("admin:index")).content.decode()


def test_add_change_delete_and_history_views_are_not_routed(admin_client):
    add_events("order-1", 1)
    base = reverse(CHANGELIST)
    for suffix in ("order-1/change/", "order-1/delete/", "order-1/history/"):
        assert admin_client.get(base + suffix).status_code == 404
    assert admin_client.get(base + "add/")["Location"] == base  # "add" is an actor id like any other: one without events
    for url in all_pages():
        assert admin_client.post(url).status_code == 405
    assert get_store().get_latest_version("order-1") == 1


def test_store_unreachable_gives_a_friendly_503(admin_client, settings):
    settings.EVENTSTORE = {"SERVERS": ["nats://127.0.0.1:1"], "TIMEOUT": 0.5}
    for url in all_pages():
        response = admin_client.get(url)
        assert response.status_code == 503
        html = response.content.decode()
        assert "The event store cannot be reached right now." in html
        assert "nats://127.0.0.1:1" in html  # the servers tried


def test_sidebar_shows_the_types_on_the_page_even_while_the_type_list_is_reused(admin_client):
    add_events("order-1", 1)
    first = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert re.findall(r'<a href="\?type=([^"]*)">', first) == ["order"]
    add_events("user-1", 1)
    again = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert actor_ids_in(again) == ["order-1", "user-1"]
    assert re.findall(r'<a href="\?type=([^"]*)">', again) == ["order", "user"]


def test_sidebar_lists_a_new_type_at_once_from_the_stores_listing(admin_client):
    add_events("a-1", 1)
    assert re.findall(r'<a href="\?q=a&amp;type=([^"]*)">', admin_client.get(reverse(CHANGELIST), {"q": "a"}).content.decode()) == ["a"]
    add_events("zz-1", 1)  # not on the page searched below: only a fresh listing of all actors knows its type
    html = admin_client.get(reverse(CHANGELIST), {"q": "a"}).content.decode()
    assert actor_ids_in(html) == ["a-1"]
    assert re.findall(r'<a href="\?q=a&amp;type=([^"]*)">', html) == ["a", "zz"]


def test_streams_not_set_up_page_says_how_to_set_them_up(admin_client, settings):
    settings.EVENTSTORE = {**settings.EVENTSTORE, "AUTO_SETUP": False}
    response = admin_client.get(actor_url("order-1"))
    assert response.status_code == 503
    html = html_lib.unescape(response.content.decode())
    assert "The event store's streams are not set up." in html
    assert "Run `manage.py eventstore_setup` (or leave AUTO_SETUP on)." in html


def test_the_admin_module_registers_the_projections_admin_too():
    """A fresh process: admin autodiscovery imports admin.py only, which must bring "Projections" with it."""
    import subprocess
    import sys

    code = (
        "import django; django.setup(); from django.contrib import admin; "
        "from django_eventstore.models import ProjectionCheckpoint; print(admin.site.is_registered(ProjectionCheckpoint))"
    )
    env = {**__import__("os").environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "True", result.stderr


def test_a_store_error_page_keeps_the_servers_answer_for_the_log(rf, admin_user, caplog):
    """A store error other than unreachable / not set up: the page says where the details are, never the raw subjects."""
    from django.contrib import admin

    from django_eventstore import EventStoreError
    from django_eventstore.models import Actor

    model_admin = admin.site.get_model_admin(Actor)
    request = rf.get(reverse(OVERVIEW))
    request.user = admin_user
    context = {**admin.site.each_context(request), "opts": model_admin.opts, "title": "Stream overview"}
    response = model_admin.store_error(request, context, EventStoreError("cannot read stream ES: $JS.API.STREAM.INFO.ES answered 500")).render()
    assert response.status_code == 503
    html = response.content.decode()
    assert "$JS" not in html and "The server&#x27;s log has the details." in html
    assert "$JS.API.STREAM.INFO.ES answered 500" in caplog.text


def test_data_too_deep_to_indent_is_shown_on_one_line(admin_client):
    deep: object = []
    for _ in range(900):  # the store accepts it; json's indenting encoder recurses a few frames per level
        deep = [deep]
    get_store().save_event(Event(actor_id="deep-1", event_type="Happened", version=1, data={"x": deep}))
    response = admin_client.get(actor_url("deep-1"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "[" * 901 + "]" * 901 in html  # on one line: the C encoder manages what the store accepted
