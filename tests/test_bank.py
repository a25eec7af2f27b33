"""The demo bank: its rules, its concurrency, its seed data and its pages, on the real JetStream store."""

from __future__ import annotations

import asyncio
import re
import threading

import pytest

from demo_project.bank.domain import Account, BankError, format_cents, open_account, parse_amount
from demo_project.bank.seed import sample_accounts, seed_missing
from django_eventstore import ActorSnapshot, Event, VersionConflictError, get_store


def opened(balance: int = 0, actor_id: str = "account-1") -> Account:
    account = Account(actor_id)
    account.open("Ada Lovelace")
    if balance:
        account.deposit(balance)
    account.save()
    return account


def test_open_deposit_withdraw():
    opened(10_000)
    Account.retry("account-1", lambda a: a.withdraw(2_550))
    account = Account.load("account-1")
    assert (account.owner, account.status, account.balance, account.version) == ("Ada Lovelace", "open", 7_450, 3)
    assert [e.event_type for e in get_store().get_events("account-1")] == ["AccountOpened", "MoneyDeposited", "MoneyWithdrawn"]


def test_no_overdraft():
    opened(1_000)
    with pytest.raises(BankError, match="insufficient funds"):
        Account.retry("account-1", lambda a: a.withdraw(1_001))
    assert Account.load("account-1").balance == 1_000
    assert get_store().get_latest_version("account-1") == 2


@pytest.mark.parametrize("amount", [0, -5, 1.5, "10"])
def test_amounts_must_be_positive_integers(amount):
    account = opened(1_000)
    with pytest.raises(BankError):
        account.deposit(amount)
    with pytest.raises(BankError):
        account.withdraw(amount)
    assert account.pending == []


def test_an_account_is_opened_once_and_needs_an_owner():
    account = opened()
    with pytest.raises(BankError, match="already opened"):
        account.open("Someone Else")
    for owner in ("   ", "x" * 101):
        with pytest.raises(BankError, match="owner"):
            Account("account-2").open(owner)


def test_commands_on_an_account_that_was_never_opened_are_refused():
    with pytest.raises(BankError, match="not opened"):
        Account.retry("account-9", lambda a: a.deposit(100))
    assert get_store().get_latest_version("account-9") == 0


def test_a_closed_account_refuses_every_command():
    opened(500)
    with pytest.raises(BankError, match="withdraw the balance"):
        Account.retry("account-1", Account.close)
    Account.retry("account-1", lambda a: a.withdraw(500))
    Account.retry("account-1", Account.close)

    for command in (lambda a: a.deposit(1), lambda a: a.withdraw(1), Account.close, lambda a: a.open("Again")):
        with pytest.raises(BankError):
            Account.retry("account-1", command)
    account = Account.load("account-1")
    assert (account.status, account.balance, account.version) == ("closed", 0, 4)


def test_two_concurrent_withdrawals_that_would_overdraw_one_wins_one_conflicts():
    opened(10_000)
    stale = [Account.load("account-1"), Account.load("account-1")]
    for account in stale:
        account.withdraw(7_000)  # each sees 100.00, so each alone is allowed
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def save(account: Account) -> None:
        barrier.wait()
        try:
            account.save()
            outcomes.append("saved")
        except VersionConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=save, args=(a,)) for a in stale]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert sorted(outcomes) == ["conflict", "saved"]
    assert Account.load("account-1", use_snapshot=False).balance == 3_000


def test_concurrent_withdrawals_with_retry_one_succeeds_the_other_is_refused():
    opened(10_000)
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def withdraw(account: Account) -> None:
        account.withdraw(3_000)

    def worker() -> None:
        barrier.wait()
        try:
            Account.retry("account-1", withdraw, attempts=10)
            outcomes.append("withdrawn")
        except BankError:
            outcomes.append("refused")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert sorted(outcomes) == ["refused", "withdrawn", "withdrawn", "withdrawn"]
    assert Account.load("account-1", use_snapshot=False).balance == 1_000


def test_async_concurrent_withdrawals_never_overdraw():
    opened(10_000)

    async def scenario() -> list[object]:
        return await asyncio.gather(*(Account.aretry("account-1", lambda a: a.withdraw(7_000), attempts=5) for _ in range(2)), return_exceptions=True)

    results = asyncio.run(scenario())

    assert sorted(type(r).__name__ for r in results) == ["BankError", "NoneType"]
    assert Account.load("account-1").balance == 3_000


def test_open_account_takes_the_next_free_number():
    opened(actor_id="account-1")
    opened(actor_id="account-3")  # 2 accounts exist, so the next number tried is 3: taken, then 4
    assert open_account("Grace Hopper").actor_id == "account-4"
    assert Account.load("account-4").owner == "Grace Hopper"


def test_concurrent_openings_get_distinct_accounts():
    barrier = threading.Barrier(4)
    ids: list[str] = []

    def worker(n: int) -> None:
        barrier.wait()
        ids.append(open_account(f"Owner {n}").actor_id)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert sorted(ids) == ["account-1", "account-2", "account-3", "account-4"]
    assert sorted(Account.load(i).owner for i in ids) == ["Owner 0", "Owner 1", "Owner 2", "Owner 3"]


def test_seed_data_is_valid_has_snapshots_and_is_written_only_once():
    progress: list[int] = []
    assert seed_missing(40, progress=lambda done, total: progress.append(done)) == 40
    assert progress == list(range(1, 41))
    assert seed_missing(40) == 0

    page = get_store().list_actors(actor_type="account", limit=1000)
    assert page.total == 40
    assert any(a.snapshot_version for a in page.actors)
    for summary in page.actors:
        from_snapshot = Account.load(summary.actor_id)
        from_events = Account.load(summary.actor_id, use_snapshot=False)
        assert from_snapshot.get_state() == from_events.get_state()
        assert from_snapshot.version == from_events.version == summary.latest_version
        assert from_events.balance >= 0 and from_events.status in ("open", "closed")


class Interrupted(Exception):
    """Stands for a Ctrl-C in the middle of seeding."""


def stored_events(actor_id: str) -> list[tuple[str, dict]]:
    return [(e.event_type, e.data) for e in get_store().get_events(actor_id)]


def test_an_interrupted_seeding_is_finished_by_the_next_run():
    def stop_after_15(done: int, total: int) -> None:
        if done == 15:
            raise Interrupted

    with pytest.raises(Interrupted):
        seed_missing(40, progress=stop_after_15)
    assert get_store().list_actors(actor_type="account").total == 15
    opened(actor_id="account-16")  # opened by a user meanwhile: kept as it is

    assert seed_missing(40) == 24
    assert get_store().list_actors(actor_type="account", limit=1000).total == 40
    assert Account.load("account-16").owner == "Ada Lovelace" and Account.load("account-16").version == 1
    expected = {a.actor_id: [(e.event_type, e.data) for e in a.pending] for a in sample_accounts(40)}
    for number in [*range(1, 16), *range(17, 41)]:
        assert stored_events(f"account-{number}") == expected[f"account-{number}"]
    assert seed_missing(40) == 0


def test_seeding_no_account_creates_nothing():
    assert seed_missing(0) == 0
    assert get_store().list_actors(actor_type="account").total == 0


@pytest.mark.parametrize("text, cents", [("12.50", 1250), ("12.5", 1250), (" 3 ", 300), ("0.01", 1)])
def test_parse_amount(text, cents):
    assert parse_amount(text) == cents
    assert parse_amount(format_cents(cents)) == cents


@pytest.mark.parametrize("text", ["", "abc", "0", "-1", "0.001", "NaN", "Infinity", "1e20", "sNaN", "-sNaN", "1e999999", "9e99999999", "1e-999999999"])
def test_parse_amount_refuses(text):
    with pytest.raises(BankError):
        parse_amount(text)


@pytest.mark.parametrize("text", ["sNaN", "NaN", "-Infinity", "1e999999", "1E+99999999"])
def test_parse_amount_says_what_is_not_a_number(text):
    with pytest.raises(BankError, match="is not an amount"):
        parse_amount(text)


# --- pages ---


@pytest.fixture(scope="module")
def bank_tables(django_db_setup, django_db_blocker):
    """The bank's read model table in the suite's database, for this module (the suite does not install the bank app)."""
    from django.conf import settings
    from django.db import connection
    from django.test import override_settings

    with override_settings(INSTALLED_APPS=[*settings.INSTALLED_APPS, "demo_project.bank"]):
        from demo_project.bank.models import AccountSummary

        with django_db_blocker.unblock(), connection.schema_editor() as editor:
            editor.create_model(AccountSummary)
    yield
    with django_db_blocker.unblock(), connection.schema_editor() as editor:
        editor.delete_model(AccountSummary)


@pytest.fixture
def bank_client(settings, client, bank_tables):
    """The test client on the demo project's urls, with the bank app installed and CSRF checks on.

    No projection runner runs here: pages do not wait for the accounts list, tests catch it up with ``project()``.
    """
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "demo_project.bank"]
    settings.ROOT_URLCONF = "demo_project.urls"
    settings.BANK_READ_MODEL_WAIT = 0
    client.handler.enforce_csrf_checks = True
    return client


def project() -> None:
    """Apply the new events to the accounts list, as the demo's projection runner does."""
    from demo_project.bank.projections import AccountSummaries
    from django_eventstore.projections import catch_up

    catch_up([AccountSummaries.name])


def csrf_token(response) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.content.decode()).group(1)


@pytest.mark.django_db
def test_pages_open_deposit_withdraw_and_show_history_escaped(bank_client):
    home = bank_client.get("/")
    assert home.status_code == 200
    token = csrf_token(home)

    response = bank_client.post("/accounts/open/", {"owner": "<b>Eve</b>", "csrfmiddlewaretoken": token})
    assert (response.status_code, response["Location"]) == (302, "/accounts/account-1/")
    bank_client.post("/accounts/account-1/", {"action": "deposit", "amount": "12.50", "csrfmiddlewaretoken": token})
    refused = bank_client.post("/accounts/account-1/", {"action": "withdraw", "amount": "20", "csrfmiddlewaretoken": token}, follow=True)
    assert "insufficient funds" in refused.content.decode()
    bank_client.post("/accounts/account-1/", {"action": "withdraw", "amount": "2.25", "csrfmiddlewaretoken": token})

    page = bank_client.get("/accounts/account-1/").content.decode()
    assert "&lt;b&gt;Eve&lt;/b&gt;" in page and "<b>Eve</b>" not in page
    assert "<strong>10.25</strong>" in page
    assert re.findall(r"(AccountOpened|MoneyDeposited|MoneyWithdrawn)", page) == ["MoneyWithdrawn", "MoneyDeposited", "AccountOpened"]
    assert "No account yet" in bank_client.get("/").content.decode()  # the list is a read model: no runner, not there yet
    project()
    home = bank_client.get("/").content.decode()
    assert 'href="/accounts/account-1/"' in home and "&lt;b&gt;Eve&lt;/b&gt;" in home and "<b>Eve</b>" not in home
    assert '<td class="num">10.25</td>' in home and '<strong id="total">10.25</strong>' in home
    assert Account.load("account-1").balance == 1025


@pytest.mark.django_db
def test_pages_refuse_posts_without_csrf_token(bank_client):
    opened(1_000)
    assert bank_client.post("/accounts/open/", {"owner": "Mallory"}).status_code == 403
    assert bank_client.post("/accounts/account-1/", {"action": "withdraw", "amount": "10"}).status_code == 403
    assert get_store().list_actors(actor_type="account").total == 1
    assert Account.load("account-1").balance == 1_000


@pytest.mark.django_db
def test_pages_of_unknown_accounts_and_bad_commands(bank_client):
    assert bank_client.get("/accounts/account-404/").status_code == 404
    assert bank_client.get("/accounts/order-1/").status_code == 404
    token = csrf_token(bank_client.get("/"))
    opened(1_000)
    for data, message in [
        ({"action": "withdraw", "amount": "ten"}, "is not an amount"),
        ({"action": "explode"}, "unknown action"),
        ({"action": "close"}, "withdraw the balance"),
    ]:
        page = bank_client.post("/accounts/account-1/", {**data, "csrfmiddlewaretoken": token}, follow=True).content.decode()
        assert message in page
    assert get_store().get_latest_version("account-1") == 2


@pytest.mark.django_db
@pytest.mark.parametrize("amount", ["sNaN", "1e999999", "Infinity"])
def test_pages_refuse_amounts_that_are_not_numbers(bank_client, amount):
    token = csrf_token(bank_client.get("/"))
    opened(1_000)
    for action in ("deposit", "withdraw"):
        response = bank_client.post("/accounts/account-1/", {"action": action, "amount": amount, "csrfmiddlewaretoken": token}, follow=True)
        assert response.status_code == 200
        assert f"&#x27;{amount}&#x27; is not an amount" in response.content.decode()
    assert get_store().get_latest_version("account-1") == 2


@pytest.mark.django_db
def test_home_page_lists_bank_accounts_from_the_read_model_with_search_total_and_pages(bank_client):
    opened(1_000)
    Account.retry("account-1", lambda a: a.withdraw(250))
    opened(99, actor_id="account-2")
    grace = Account("account-3")
    grace.open("Grace Hopper")
    grace.deposit(5)
    grace.save()
    for actor_id in ("account-abc", "account-1-2", "account-" + "9" * 30):  # not the bank's: not listed
        get_store().save_event(Event(event_type="AccountOpened", data={"owner": "Mallory"}, actor_id=actor_id, version=1))
    project()

    page = bank_client.get("/").content.decode()
    assert "Accounts (3)" in page and '<strong id="total">8.54</strong>' in page
    assert all(f'href="/accounts/account-{n}/"' in page for n in (1, 2, 3)) and "Mallory" not in page
    found = bank_client.get("/", {"q": "grace"}).content.decode()
    assert "Accounts (1)" in found and "account-3" in found and "account-1" not in found and '<strong id="total">0.05</strong>' in found
    assert "No account owned by “&lt;i&gt;”" in bank_client.get("/", {"q": "<i>"}).content.decode()
    for query in ("?page=2", "?page=0", "?page=x", "?q=" + "x" * 300):
        assert bank_client.get("/" + query).status_code == 200, query


@pytest.mark.django_db
def test_the_list_marks_accounts_whose_history_the_bank_cannot_apply(bank_client):
    opened(1_000)
    get_store().append("account-1", [Event(event_type="MoneyDeposited", data={"amount": "lots"})], expected_version=2)
    project()
    page = bank_client.get("/").content.decode()
    assert "unreadable" in page and '<strong id="total">0.00</strong>' in page


@pytest.mark.django_db
def test_pages_of_account_numbers_too_long_for_an_actor_id_are_not_found(bank_client):
    token = csrf_token(bank_client.get("/"))
    for digits in (19, 300):
        assert bank_client.get(f"/accounts/account-{'7' * digits}/").status_code == 404
        response = bank_client.post(f"/accounts/account-{'7' * digits}/", {"action": "deposit", "amount": "1", "csrfmiddlewaretoken": token})
        assert response.status_code == 404
    assert get_store().list_actors(actor_type="account").total == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "event, reason",
    [
        (Event(event_type="MoneyPrinted", data={"amount": 100}), "MoneyPrinted"),
        (Event(event_type="MoneyDeposited", data={}), "amount"),
        (Event(event_type="MoneyDeposited", data={"amount": "lots"}), "amount"),
        (Event(event_type="MoneyDeposited", data={"amount": 1.5}), "amount"),
    ],
)
def test_an_account_whose_history_cannot_be_replayed_gets_an_error_page(bank_client, event, reason):
    opened(1_000)
    get_store().append("account-1", [event], expected_version=2)
    token = csrf_token(bank_client.get("/"))

    response = bank_client.get("/accounts/account-1/")
    page = response.content.decode()
    assert response.status_code == 409
    assert "history cannot be read" in page and reason in page
    assert re.findall(r"(AccountOpened|MoneyDeposited|MoneyPrinted)", page)[-1] == "AccountOpened"  # the history is shown

    posted = bank_client.post("/accounts/account-1/", {"action": "deposit", "amount": "1", "csrfmiddlewaretoken": token}, follow=True)
    assert posted.status_code == 409 and "history cannot be read" in posted.content.decode()
    assert get_store().get_latest_version("account-1") == 3


@pytest.mark.django_db
def test_an_account_whose_snapshot_is_not_an_accounts_state_gets_an_error_page(bank_client):
    opened(1_000)
    get_store().save_snapshot(ActorSnapshot(actor_id="account-1", version=2, state={"owner": "Eve", "balance": "lots", "status": "open"}))

    response = bank_client.get("/accounts/account-1/")
    assert response.status_code == 409
    assert "history cannot be read" in response.content.decode() and "snapshot" in response.content.decode()
    assert Account.load("account-1", use_snapshot=False).balance == 1_000
