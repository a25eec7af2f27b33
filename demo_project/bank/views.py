"""Server-rendered pages: the list of accounts, opening one, and an account with its history and commands."""

from __future__ import annotations

from typing import Callable

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Q, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from django_eventstore import InvalidActorId, VersionConflictError, get_store
from django_eventstore.actor_urls import actor_segment
from django_eventstore.aggregates import UnhandledEvent
from django_eventstore.projections import ProjectionTimeout, wait_for

from .domain import MAX_OWNER_LENGTH, Account, BadHistory, BankError, format_cents, open_account, parse_amount
from .models import AccountSummary
from .projections import AccountSummaries

PAGE_SIZE = 50
#: An account's stored history has an event (or a snapshot) the bank cannot apply.
UNREADABLE = (BadHistory, UnhandledEvent)


@require_http_methods(["GET", "HEAD"])
def home(request: HttpRequest) -> HttpResponse:
    """Accounts from the read model: a page of them, a search by owner, and the total held."""
    query = request.GET.get("q", "").strip()[:MAX_OWNER_LENGTH]
    accounts = AccountSummary.objects.all()
    if query:
        accounts = accounts.filter(Q(owner__icontains=query) | Q(account_id=query))
    page = Paginator(accounts, PAGE_SIZE).get_page(request.GET.get("page"))
    total = accounts.exclude(status="unreadable").aggregate(total=Sum("balance"))["total"] or 0
    rows = [(account, actor_links(account.account_id)) for account in page]
    context = {"page": page, "rows": rows, "query": query, "total": format_cents(total), "max_owner_length": MAX_OWNER_LENGTH}
    return render(request, "bank/home.html", context)


def actor_links(actor_id: str) -> dict[str, str]:
    """Where the account is seen as the event store holds it: its admin page and its REST API URL."""
    segment = actor_segment(actor_id)
    return {
        "admin": reverse("admin:django_eventstore_actor_actor", args=[segment]),
        "api": reverse("django_eventstore:actor-detail", args=[segment]),
    }


def _wait_for_list(request: HttpRequest, account: Account) -> None:
    """Read your writes: wait (bounded) until the accounts list has the saved events, or say it is catching up."""
    try:
        wait_for(account.last_position, [AccountSummaries.name], timeout=getattr(settings, "BANK_READ_MODEL_WAIT", 2.0))
    except ProjectionTimeout:
        messages.warning(request, "The accounts list is catching up: it may not show this change yet (is the projection runner running?).")


@require_POST
def open_view(request: HttpRequest) -> HttpResponse:
    try:
        account = open_account(request.POST.get("owner", ""))
    except BankError as e:
        messages.error(request, str(e))
        return redirect("bank:home")
    messages.success(request, f"Opened {account.actor_id} for {account.owner}.")
    _wait_for_list(request, account)
    return redirect("bank:account", account_id=account.actor_id)


@require_http_methods(["GET", "HEAD", "POST"])
def account_view(request: HttpRequest, account_id: str) -> HttpResponse:
    try:
        return _account_page(request, account_id)
    except InvalidActorId:  # the url pattern keeps ids short; this is the store's own check
        raise Http404(f"{account_id} is not an account") from None


def _account_page(request: HttpRequest, account_id: str) -> HttpResponse:
    if request.method == "POST":
        _run_command(request, account_id)
        return redirect("bank:account", account_id=account_id)
    try:
        account = Account.load(account_id)
    except UNREADABLE as e:
        history = get_store().get_events(account_id)
        context = {"account_id": account_id, "reason": str(e), "history": reversed(history), "links": actor_links(account_id)}
        return render(request, "bank/unreadable.html", context, status=409)
    if not account.version:
        raise Http404(f"{account_id} does not exist")
    history = get_store().get_events(account_id)
    return render(request, "bank/account.html", {"account": account, "history": reversed(history), "links": actor_links(account_id)})


COMMANDS: dict[str, Callable[..., None]] = {"deposit": Account.deposit, "withdraw": Account.withdraw, "close": Account.close}


def _run_command(request: HttpRequest, account_id: str) -> None:
    """Run the posted command (deposit, withdraw or close), reloading on a conflict; report it as a message."""
    action = request.POST.get("action", "")
    try:
        command = _command(action, request.POST.get("amount", ""))
        account = Account.retry(account_id, command)
    except BankError as e:
        messages.error(request, str(e))
    except VersionConflictError:
        messages.error(request, "The account is busy (changed by someone else meanwhile); please try again.")
    except UNREADABLE as e:
        messages.error(request, f"Nothing done: this account's history cannot be read ({e}).")
    else:
        messages.success(request, f"{action.capitalize()} done. Balance {format_cents(account.balance)}.")
        _wait_for_list(request, account)


def _command(action: str, amount: str) -> Callable[[Account], Account]:
    """The command to run on the loaded account; a bad action or amount is refused before loading."""
    method = COMMANDS.get(action)
    if method is None:
        raise BankError(f"unknown action {action!r}")
    args = () if action == "close" else (parse_amount(amount),)

    def run(account: Account) -> Account:
        method(account, *args)
        return account

    return run
