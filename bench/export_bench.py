"""Export and import rates (events/s) of ``eventstore_export`` and ``eventstore_import``.

Data set: the test suite's 10,000 events over 1,000 actors (half stored actor
after actor, half interleaved; see ``tests/test_commands_exchange.make_dataset``)
on a throw-away nats-server with JetStream (file storage). Each run exports a
fresh stream to a file, imports the file into an empty stream, then imports it
again (nothing to store: the idempotence check alone). Prints every run and
the medians.

    python bench/export_bench.py [--runs 3] [--actors 1000] [--per-actor 10]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import django  # noqa: E402
from django.conf import settings  # noqa: E402


def timed(*args: str) -> float:
    """Seconds one command takes."""
    from django.core.management import call_command

    started = time.perf_counter()
    call_command(*args, stdout=io.StringIO(), stderr=io.StringIO(), verbosity=0)
    return time.perf_counter() - started


def one_run(url: str, actors: int, per_actor: int, workdir: Path) -> dict[str, float]:
    from django.test.utils import override_settings

    from tests.test_commands_exchange import make_dataset

    def stream() -> dict:
        name = f"B{uuid.uuid4().hex[:10].upper()}"
        return {"SERVERS": [url], "STREAM": name, "SUBJECT_PREFIX": name.lower()}

    events = actors * per_actor
    export_file = workdir / f"{uuid.uuid4().hex}.jsonl"
    with override_settings(EVENTSTORE=stream()):
        make_dataset(actors, per_actor)
        export = timed("eventstore_export", str(export_file))
    with override_settings(EVENTSTORE=stream()):
        first = timed("eventstore_import", str(export_file))
        again = timed("eventstore_import", str(export_file))
    return {"export": events / export, "import": events / first, "re-import": events / again}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--actors", type=int, default=1000)
    parser.add_argument("--per-actor", type=int, default=10)
    options = parser.parse_args()

    settings.configure(INSTALLED_APPS=["django_eventstore"], USE_TZ=True, EVENTSTORE={})
    django.setup()
    from django_eventstore.testing import NatsServer

    runs = []
    with NatsServer() as server, tempfile.TemporaryDirectory() as workdir:
        for n in range(1, options.runs + 1):
            rates = one_run(server.url, options.actors, options.per_actor, Path(workdir))
            runs.append(rates)
            print(f"run {n}: " + ", ".join(f"{k} {v:,.0f} events/s" for k, v in rates.items()), flush=True)
    total = options.actors * options.per_actor
    print(f"median of {options.runs} runs, {total:,} events over {options.actors:,} actors:")
    for key in runs[0]:
        print(f"  {key:<10} {statistics.median(r[key] for r in runs):>8,.0f} events/s")


if __name__ == "__main__":
    main()
