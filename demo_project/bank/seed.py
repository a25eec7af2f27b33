"""Sample data for the demo: accounts with some history, written with one atomic append each.

Seeding is resumable: each account is written whole or not at all, at version 0, so a run that was
interrupted (Ctrl-C) is finished by the next one, which writes only the accounts still missing.
"""

from __future__ import annotations

import random
from typing import Callable, Iterator

from django_eventstore import VersionConflictError
from django_eventstore.core.facade import EventStore

from .domain import Account, BankError, account_id, count_accounts

FIRST = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Frances", "Dennis", "Radia", "Leslie"]
LAST = ["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Thompson", "Allen", "Ritchie", "Perlman", "Lamport"]


def sample_accounts(count: int, store: EventStore | None = None) -> Iterator[Account]:
    """``account-1`` ... ``account-<count>``, not saved yet, with 1-30 pending events each (the same every time)."""
    rng = random.Random(42)
    for number in range(1, count + 1):
        account = Account(account_id(number), store)
        account.open(f"{rng.choice(FIRST)} {rng.choice(LAST)}")
        for _ in range(rng.randrange(30)):
            _random_move(account, rng)
        if rng.random() < 0.05:
            if account.balance:
                account.withdraw(account.balance)
            account.close()
        yield account


def _random_move(account: Account, rng: random.Random) -> None:
    amount = rng.randrange(1, 500) * 100 + rng.choice([0, 50, 99])
    try:
        (account.withdraw if rng.random() < 0.4 else account.deposit)(amount)
    except BankError:  # overdraft refused: the bank works as usual
        account.deposit(amount)


def seed_missing(count: int, store: EventStore | None = None, progress: Callable[[int, int], None] | None = None) -> int:
    """Write the sample accounts 1 ... ``count`` that do not exist yet; returns how many were written.

    Nothing is read or written when the store already has ``count`` accounts or more (the usual
    restart). Otherwise every sample account is saved at version 0: one that exists already (from an
    interrupted run, or opened by a user) makes that save a version conflict and is left as it is.
    Accounts with 10 events or more get a snapshot from the ``Account`` snapshot policy.
    """
    if count <= 0 or count_accounts(store) >= count:
        return 0
    created = 0
    for number, account in enumerate(sample_accounts(count, store), 1):
        try:
            account.save()
            created += 1
        except VersionConflictError:
            pass  # already there
        if progress is not None:
            progress(number, count)
    return created
