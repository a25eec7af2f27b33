"""A small bank: each account is an actor ``account-<n>`` built on the ``Aggregate`` class.

Amounts are integers in cents. Rules: an account is opened once; deposits and
withdrawals are positive; no overdraft; an account closes only when empty;
a closed account refuses every command.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django_eventstore import Event, VersionConflictError, get_store
from django_eventstore.aggregates import Aggregate, applies
from django_eventstore.core.facade import EventStore

ACCOUNT_TYPE = "account"
MAX_OWNER_LENGTH = 100
#: An account id's number: at most 18 digits, which keeps ids far below the store's actor id limit.
ACCOUNT_NUMBER = "[0-9]{1,18}"
_ACCOUNT_ID = re.compile(rf"{ACCOUNT_TYPE}-{ACCOUNT_NUMBER}")
OPENED, DEPOSITED, WITHDRAWN, CLOSED = "AccountOpened", "MoneyDeposited", "MoneyWithdrawn", "AccountClosed"
FORGOTTEN = "ActorForgotten"  # appended by store.forget: the customer's data is erased


class BankError(Exception):
    """A command the account's rules refuse; the message is meant for the user."""


class BadHistory(Exception):
    """A stored event the bank cannot apply (written by other means than the bank, e.g. the REST API)."""


def account_id(number: int) -> str:
    return f"{ACCOUNT_TYPE}-{number}"


def is_account_id(actor_id: str) -> bool:
    """Whether an actor id is a bank account's (``account-<number>``), which the pages can link to."""
    return _ACCOUNT_ID.fullmatch(actor_id) is not None


def _field(event: Event, name: str, check: Any) -> Any:
    value = event.data.get(name) if isinstance(event.data, dict) else None
    if not check(value):
        raise BadHistory(f"event {event.version} ({event.event_type}) has no valid {name!r}: {event.data!r}")
    return value


def owner_name(data: dict[str, Any]) -> Any:
    """The owner's name of an AccountOpened's data (schema 2: first and last name; a bare ``owner`` from other writers)."""
    if "first_name" in data:
        first, last = data.get("first_name"), data.get("last_name", "")
        return f"{first} {last}".strip() if isinstance(first, str) and isinstance(last, str) else None
    return data.get("owner")


def _amount(event: Event) -> int:
    return _field(event, "amount", lambda v: type(v) is int and v > 0)


class Account(Aggregate):
    actor_type = ACCOUNT_TYPE  # registered: the admin and the API show an account's state at any version
    snapshot_every = 10
    #: Position of the last event this object saved (0: none): what a page waits for in the accounts list.
    last_position = 0

    def __init__(self, actor_id: str, store: EventStore | None = None) -> None:
        super().__init__(actor_id, store)
        self.owner = ""
        self.balance = 0
        self.status = "new"  # "new", "open", "closed" or "forgotten"

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a snapshot's state, refusing one that is not an account's (BadHistory)."""
        if not (isinstance(state, dict) and isinstance(state.get("owner"), str) and type(state.get("balance")) is int and state.get("status") in ("new", "open", "closed", "forgotten")):
            raise BadHistory(f"its snapshot is not an account's state: {state!r}")
        super().set_state(state)

    def save(self) -> list[Event]:
        """Save as the aggregate does, remembering the last stored event's position."""
        stored = super().save()
        if stored:
            self.last_position = stored[-1].position or 0
        return stored

    # --- commands ---

    def open(self, owner: str) -> None:
        if self.status != "new":
            raise BankError(f"{self.actor_id} is already opened")
        owner = owner.strip()
        if not owner or len(owner) > MAX_OWNER_LENGTH:
            raise BankError(f"the owner's name is required, at most {MAX_OWNER_LENGTH} characters")
        first, _, last = owner.partition(" ")
        self.record(OPENED, {"first_name": first, "last_name": last.strip()})

    def deposit(self, amount: int) -> None:
        self._check_usable(amount)
        self.record(DEPOSITED, {"amount": amount})

    def withdraw(self, amount: int) -> None:
        self._check_usable(amount)
        if amount > self.balance:
            raise BankError(f"insufficient funds: the balance is {format_cents(self.balance)}")
        self.record(WITHDRAWN, {"amount": amount})

    def close(self) -> None:
        self._check_usable()
        if self.balance:
            raise BankError(f"withdraw the balance of {format_cents(self.balance)} before closing")
        self.record(CLOSED)

    def _check_usable(self, amount: int | None = None) -> None:
        if self.status == "new":
            raise BankError(f"{self.actor_id} is not opened")
        if self.status == "closed":
            raise BankError(f"{self.actor_id} is closed")
        if self.status == "forgotten":
            raise BankError(f"{self.actor_id} belonged to a forgotten customer")
        if amount is not None and (type(amount) is not int or amount <= 0):
            raise BankError("the amount must be positive")

    # --- state changes ---

    def _forgotten(self, event: Event) -> bool:
        """A forgotten customer's events have no data: the account reads as forgotten, its balance unknown (0)."""
        if event.forgotten or event.event_type == FORGOTTEN:
            self.owner, self.balance, self.status = "", 0, "forgotten"
            return True
        return False

    @applies(OPENED)
    def _opened(self, event: Event) -> None:
        if self._forgotten(event):
            return
        owner = owner_name(event.data)
        if not isinstance(owner, str):
            raise BadHistory(f"event {event.version} ({event.event_type}) has no valid owner's name: {event.data!r}")
        self.owner = owner
        self.status = "open"

    @applies(DEPOSITED)
    def _deposited(self, event: Event) -> None:
        if not self._forgotten(event):
            self.balance += _amount(event)

    @applies(WITHDRAWN)
    def _withdrawn(self, event: Event) -> None:
        if not self._forgotten(event):
            self.balance -= _amount(event)

    @applies(CLOSED)
    def _closed(self, event: Event) -> None:
        if not self._forgotten(event):
            self.status = "closed"

    @applies(FORGOTTEN)
    def _actor_forgotten(self, event: Event) -> None:
        self._forgotten(event)


def count_accounts(store: EventStore | None = None) -> int:
    return (store or get_store()).list_actors(actor_type=ACCOUNT_TYPE, limit=1).total


def open_account(owner: str, store: EventStore | None = None, attempts: int = 100) -> Account:
    """Open a new account under the next free number; when another opener takes it, try the next one."""
    number = count_accounts(store)
    for _ in range(attempts):
        number += 1
        account = Account(account_id(number), store)
        account.open(owner)
        try:
            account.save()
            return account
        except VersionConflictError as e:
            conflict = e
    raise conflict


def format_cents(cents: int) -> str:
    """``1250`` -> ``"12.50"``."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def parse_amount(text: str) -> int:
    """``"12.5"`` -> ``1250`` cents; BankError when it is not a positive amount with at most 2 decimals."""
    try:
        value = Decimal(text.strip())
        if not value.is_finite():  # NaN, sNaN, Infinity
            raise ArithmeticError
        cents = value * 100  # may overflow, e.g. 1e999999
        whole = cents == cents.to_integral_value()
    except ArithmeticError:  # decimal's InvalidOperation, Overflow, ...
        raise BankError(f"{text!r} is not an amount") from None
    if not whole or cents <= 0 or cents > 10**12:
        raise BankError("the amount must be positive, with at most 2 decimals")
    return int(cents)
