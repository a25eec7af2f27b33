"""Sample data for the demo: accounts with some history, written with one atomic append each."""

from __future__ import annotations

import random
from typing import Callable

from django_eventstore.core.facade import EventStore

from .domain import Account, BankError, account_id, count_accounts

FIRST = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Frances", "Dennis", "Radia", "Leslie"]
LAST = ["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Thompson", "Allen", "Ritchie", "Perlman", "Lamport"]


def seed_accounts(count: int, store: EventStore | None = None, progress: Callable[[int, int], None] | None = None) -> int:
    """Create ``account-1`` ... ``account-<count>`` with 1-30 events each (the same data every time); returns count.

    Accounts with 10 events or more get a snapshot from the ``Account`` snapshot policy.
    """
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
        account.save()
        if progress is not None:
            progress(number, count)
    return count


def _random_move(account: Account, rng: random.Random) -> None:
    amount = rng.randrange(1, 500) * 100 + rng.choice([0, 50, 99])
    try:
        (account.withdraw if rng.random() < 0.4 else account.deposit)(amount)
    except BankError:  # overdraft refused: the bank works as usual
        account.deposit(amount)


def seed_if_empty(count: int, store: EventStore | None = None, progress: Callable[[int, int], None] | None = None) -> int:
    """Seed only when the store has no account yet; returns how many accounts were created (0 when reused)."""
    if count_accounts(store):
        return 0
    return seed_accounts(count, store, progress)
