"""The bank's projection: account events -> ``AccountSummary`` rows (owner, balance, status, version)."""

from __future__ import annotations

import logging

from django.db.models import F

from django_eventstore import Event
from django_eventstore.projections import Projection, handles

from .domain import ACCOUNT_TYPE, CLOSED, DEPOSITED, FORGOTTEN, MAX_OWNER_LENGTH, OPENED, WITHDRAWN, is_account_id, owner_name
from .models import AccountSummary

log = logging.getLogger(__name__)


class AccountSummaries(Projection):
    """Keeps one summary row per bank account. Events the bank cannot apply mark the row unreadable instead of stopping."""

    name = "bank.account-summaries"
    actor_types = [ACCOUNT_TYPE]

    @handles(OPENED)
    def opened(self, event: Event) -> None:
        if not _is_bank_account(event):
            return
        owner = None if event.forgotten else owner_name(event.data)
        readable = isinstance(owner, str) and 0 < len(owner) <= MAX_OWNER_LENGTH
        AccountSummary.objects.update_or_create(
            account_id=event.actor_id,
            defaults={
                "number": int(str(event.actor_id).split("-", 1)[1]),
                "owner": owner if readable else "",
                "balance": 0,
                "status": "forgotten" if event.forgotten else "open" if readable else "unreadable",
                "version": event.version,
            },
        )

    @handles(DEPOSITED, WITHDRAWN)
    def moved(self, event: Event) -> None:
        if not _is_bank_account(event):
            return
        if event.forgotten:
            self.forgotten(event)
            return
        amount = event.data.get("amount")
        rows = AccountSummary.objects.filter(account_id=event.actor_id)
        if type(amount) is not int or amount <= 0:
            rows.update(status="unreadable", version=event.version)
            return
        change = amount if event.event_type == DEPOSITED else -amount
        rows.update(balance=F("balance") + change, version=event.version)

    @handles(FORGOTTEN)
    def forgotten(self, event: Event) -> None:
        """The customer was forgotten: the row keeps the account's number, its owner and balance are blanked."""
        if _is_bank_account(event):
            AccountSummary.objects.filter(account_id=event.actor_id).update(owner="", balance=0, status="forgotten", version=event.version)

    @handles(CLOSED)
    def closed(self, event: Event) -> None:
        if event.forgotten:
            self.forgotten(event)
        elif _is_bank_account(event):
            AccountSummary.objects.filter(account_id=event.actor_id).exclude(status="unreadable").update(status="closed", version=event.version)

    def reset(self) -> None:
        AccountSummary.objects.all().delete()


def _is_bank_account(event: Event) -> bool:
    """Events of actors like ``account-abc`` (written by other programs) are not the bank's: skipped."""
    if is_account_id(event.actor_id or ""):
        return True
    log.debug("skipping %s of %r: not a bank account", event.event_type, event.actor_id)
    return False
