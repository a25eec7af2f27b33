"""``manage.py eventstore_status [--format table|json]``: server, account usage and stream state."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django_eventstore.management.base import StoreCommand

ACCOUNT_KEYS = ("memory", "storage", "streams", "consumers")


class Command(StoreCommand):
    help = "Show the NATS server, JetStream account usage and the state of the event and snapshot streams."
    formats = ("table", "json")

    def run(self, *args: Any, format: str, **options: Any) -> None:
        summary = self.store.server_summary()
        if format == "json":
            self.write_json(asdict(summary))
            return
        self.stdout.write(f"server   {summary.url} (nats-server {summary.version})")
        limits = summary.account.get("limits", {})
        usage = ", ".join(f"{key} {_with_limit(summary.account.get(key), limits.get('max_' + key))}" for key in ACCOUNT_KEYS if key in summary.account)
        if usage:
            self.stdout.write(f"account  {usage}")
        self.stdout.write("")
        rows = [
            (
                s.name,
                " ".join(s.subjects),
                f"{s.messages:,}",
                f"{s.bytes:,}",
                f"{s.subject_count:,}",
                f"{s.first_seq}..{s.last_seq}",
                s.storage,
                s.replicas,
                s.cluster.get("leader"),
            )
            for s in summary.streams
        ]
        self.write_table(("STREAM", "SUBJECTS", "MESSAGES", "BYTES", "ACTORS", "SEQUENCES", "STORAGE", "REPLICAS", "LEADER"), rows)


def _with_limit(value: Any, limit: Any) -> str:
    """``12`` or ``12/100``; a limit of -1 (none) or absent is not shown."""
    shown = f"{value:,}" if isinstance(value, int) else str(value)
    return f"{shown}/{limit:,}" if isinstance(limit, int) and limit >= 0 else shown
