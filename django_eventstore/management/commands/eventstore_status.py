"""``manage.py eventstore_status [--format table|json]``: server, account usage, stream state and placement."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django_eventstore.admin_views import replica_text, server_name
from django_eventstore.management.base import StoreCommand

ACCOUNT_KEYS = ("memory", "storage", "streams", "consumers")
NAME_WIDTH = 12  # server names in the tables: default names are 56-character ids


class Command(StoreCommand):
    help = "Show the NATS server, JetStream account usage, the state of the event and snapshot streams and where their replicas are."
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
        state = [
            (s.name, f"{s.messages:,}", f"{s.bytes:,}", f"{s.subject_count:,}", f"{s.first_seq}..{s.last_seq}", s.storage, s.replicas, server_name(s.cluster.get("leader"), NAME_WIDTH))
            for s in summary.streams
        ]
        self.write_table(("STREAM", "MESSAGES", "BYTES", "ACTORS", "SEQUENCES", "STORAGE", "REPLICAS", "LEADER"), state)
        self.stdout.write("")
        placement = [
            (
                s.name,
                " ".join(s.subjects),
                s.cluster.get("name") or "not clustered",
                ", ".join(replica_text(r, NAME_WIDTH) for r in s.cluster.get("replicas") or []) or "-",
            )
            for s in summary.streams
        ]
        self.write_table(("STREAM", "SUBJECTS", "CLUSTER", "FOLLOWERS"), placement)


def _with_limit(value: Any, limit: Any) -> str:
    """``12`` or ``12/100``; a limit of -1 (none) or absent is not shown."""
    shown = f"{value:,}" if isinstance(value, int) else str(value)
    return f"{shown}/{limit:,}" if isinstance(limit, int) and limit >= 0 else shown
