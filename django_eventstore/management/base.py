"""What the ``eventstore_*`` commands share: error mapping, table/JSON output, progress, stream scans."""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_eventstore import EventStoreError, EventStoreUnavailable, StreamSetupError, get_store
from django_eventstore.store import explain, get_running_store

if TYPE_CHECKING:
    from django_eventstore.core.facade import EventStore

STORE_TROUBLE = (EventStoreUnavailable, StreamSetupError)  # errors about the store itself, never about a command's input

# Commands that only look at the store: with SERVERS = "embedded" they never start the
# server (a status check would otherwise leave one running); they say that none runs.
READ_ONLY_COMMANDS = frozenset({"eventstore_status", "eventstore_actors", "eventstore_events", "eventstore_verify", "eventstore_export"})


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an int >= minimum."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    return parse


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """``count`` and the noun, singular for exactly 1: "1 actor", "2,000 actors"."""
    return f"{count:,} {noun if count == 1 else plural_noun or noun + 's'}"


def to_json(obj: Any, indent: int | None = None) -> str:
    """JSON as the store writes it: UTF-8 kept, no spaces unless indented."""
    separators = None if indent else (",", ":")
    return json.dumps(obj, ensure_ascii=False, indent=indent, separators=separators)


class StoreCommand(BaseCommand):
    """Base of the eventstore commands: ``run()`` does the work; store errors become CommandError.

    Subclasses set ``formats`` to get a ``--format`` option (the first is the default).
    """

    formats: Sequence[str] = ()
    verbosity = 1

    def add_arguments(self, parser: CommandParser) -> None:
        if self.formats:
            parser.add_argument("--format", choices=self.formats, default=self.formats[0], help="output format (default: %(default)s)")

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity = options["verbosity"]
        try:
            self.run(*args, **options)
        except EventStoreError as e:
            raise CommandError(explain(e)) from e

    def run(self, *args: Any, **options: Any) -> None:
        raise NotImplementedError

    @property
    def only_reads(self) -> bool:
        """Whether this command only reads the store (its module's name is in READ_ONLY_COMMANDS)."""
        return type(self).__module__.rpartition(".")[2] in READ_ONLY_COMMANDS

    @property
    def store(self) -> EventStore:
        """The process's store; for a command that only reads, one that does not start the embedded server."""
        return get_running_store() if self.only_reads else get_store()

    # ----- output -----

    def note(self, message: str, level: int = 1) -> None:
        """A diagnostic line on stderr, shown from verbosity ``level`` on."""
        if self.verbosity >= level:
            self.stderr.write(message)

    def write_json(self, data: Any) -> None:
        self.stdout.write(to_json(data, indent=2))

    def write_table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Left-aligned columns, a styled header line; None shows as ``-``."""
        cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
        widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]

        def line(values: Sequence[str]) -> str:
            return "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()

        self.stdout.write(line(headers), style_func=self.style.MIGRATE_HEADING)
        for row in cells:
            self.stdout.write(line(row))


class Progress:
    """Progress on stderr (a terminal, or verbosity 2 and up).

    On a terminal, a bar redrawn in place (``\\r``) at most every 0.2 s; in a file or a pipe, where
    redraws would pile up on one line, a line per tenth of the way and one at the end.
    """

    WIDTH = 30

    def __init__(self, command: StoreCommand, total: int, label: str):
        self.out = command.stderr
        self.total = max(total, 1)
        self.label = label
        self.tty = command.stderr.isatty()
        self.enabled = command.verbosity >= 2 or (command.verbosity >= 1 and self.tty)
        self._drawn = 0.0
        self._tenths = 0  # in a file: the tenths of the way already written

    def update(self, position: int, count: int, force: bool = False) -> None:
        """Show how far the scan is (``position`` of ``total``) and how many items it produced."""
        if not self.enabled:
            return
        fraction = min(position / self.total, 1.0)
        if self.tty:
            now = time.monotonic()
            if not force and now - self._drawn < 0.2:
                return
            self._drawn = now
            self.out.write(f"\r{self.line(fraction, count)}", ending="")
            self.out.flush()
        elif force or (fraction < 1 and int(fraction * 10) > self._tenths):  # 100% is written once, by finish()
            self._tenths = int(fraction * 10)
            self.out.write(self.line(fraction, count))

    def line(self, fraction: float, count: int) -> str:
        bar = "#" * int(fraction * self.WIDTH)
        return f"{self.label} [{bar.ljust(self.WIDTH)}] {fraction:4.0%} {count:,}"

    def finish(self, count: int) -> None:
        if self.enabled:
            self.update(self.total, count, force=True)
            if self.tty:
                self.out.write("")
