"""``manage.py eventstore_forget ACTOR_ID [--yes]``: forget an actor for good (crypto-shredding)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from django_eventstore.management.base import StoreCommand, plural


class Command(StoreCommand):
    help = (
        "Forget an actor: erase its data key (its events' data can never be read again), delete its snapshots and append "
        "an ActorForgotten event. The events stay, with their versions, types, metadata and timestamps. Needs "
        "EVENTSTORE['ENCRYPTION']. Asks for confirmation unless --yes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("actor_id", metavar="ACTOR_ID", help="the actor to forget")
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    def run(self, actor_id: str, *, yes: bool, **options: Any) -> None:
        if not self.store.encrypted:
            raise CommandError("forgetting needs encryption at rest: set EVENTSTORE['ENCRYPTION'] (see docs/forgetting.md); nothing was changed")
        if not yes and not self.confirm(actor_id):
            raise CommandError("not forgotten: nothing was changed")
        result = self.store.forget(actor_id)
        if result.already_forgotten:
            self.stdout.write(f"actor {actor_id!r} was forgotten already: nothing to do")
            return
        done = []
        if result.key_destroyed:
            done.append("its data key erased")
        if result.snapshots_deleted:
            done.append(f"{plural(result.snapshots_deleted, 'snapshot')} deleted")
        if result.audit_event is not None:
            done.append(f"{result.audit_event.event_type} appended at version {result.audit_event.version}")
        self.stdout.write(f"forgot actor {actor_id!r}: {', '.join(done) or 'it had no key, snapshots or events'}", style_func=self.style.SUCCESS)
        if result.plaintext_events:
            self.stderr.write(
                f"warning: {plural(result.plaintext_events, 'event')} of {actor_id!r} were stored before encryption was on "
                "and still hold their data in clear; forgetting cannot erase them (see docs/forgetting.md)"
            )

    def confirm(self, actor_id: str) -> bool:
        answer = input(f"Forget actor {actor_id!r} for good? Its data cannot be read again. Type 'yes' to go on: ")
        return answer.strip().lower() == "yes"
