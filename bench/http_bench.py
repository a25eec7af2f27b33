"""The store's HTTP endpoints against a bare DRF view, under gunicorn (WSGI) and uvicorn (ASGI), in one run.

    python bench/http_bench.py [--rounds 3] [--requests 1000] [--concurrency 2] [--workers 2] [--servers gunicorn,uvicorn]
    python bench/http_bench.py --profile [--requests 1000]

Starts a throw-away nats-server, then serves the project in bench/http_project/
(the store's API and a bare DRF ``APIView`` returning a constant, with the same
authentication and permission classes) under gunicorn (``--workers`` sync
workers) and uvicorn (``--workers`` single-process servers, one port each;
``uvicorn-supervisor`` in ``--servers`` is uvicorn's own ``--workers`` instead),
each on a free loopback port, and stops them after. The load comes from this script: ``--concurrency``
threads, each with its own ``http.client`` connection (kept alive where the
server allows it: gunicorn's sync workers close it after every response),
sending its share of ``--requests`` one after the other. Per server and round it
measures, in an order that rotates from round to round:

- GET ``bare/`` (the bare view);
- POST ``api/eventstore/actors/<id>/events/``: each thread writes the next
  version of its own actor, so every request stores one event;
- GET ``api/eventstore/actors/<id>/version/`` of an actor with one event.

It prints requests/s, median and p99 latency (medians over the rounds) and each
endpoint's median latency over the bare view's (the median of the rounds'
ratios; goal at most 1.5).

``--profile`` runs no server: it profiles the three requests in this process
with cProfile through Django's test client (WSGI, the path of one gunicorn
worker) and prints where the request thread's time goes. cProfile sees one
thread: the store's work on its event-loop thread shows as the request thread
waiting for it.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import http.client
import io
import json
import os
import pstats
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from django_eventstore.testing import NatsServer, free_port, stop_process, wait_for_port  # noqa: E402

HOST = "127.0.0.1"
API = "/api/eventstore"
READ_ACTOR = "bench-read"
GOAL = 1.5
SERVERS = ("gunicorn", "uvicorn", "uvicorn-supervisor")  # the last: uvicorn's own --workers, to show its TCP_NODELAY issue


@dataclass
class Writer:
    """A client thread's own actor and the version it writes next."""

    actor: str
    version: int = 1


@dataclass(frozen=True)
class Endpoint:
    """A measured request: ``{actor}`` in the path is the client thread's own actor; a write stores its next version."""

    label: str
    method: str
    path: str
    ok: int
    writes: bool = False

    def next_request(self, writer: Writer) -> tuple[str, str, bytes | None]:
        """Method, path and body of the next request of the thread that owns `writer`."""
        if not self.writes:
            return self.method, self.path, None
        body = json.dumps({"event_type": "Bench", "version": writer.version, "data": {"i": writer.version}}).encode()
        return self.method, self.path.format(actor=writer.actor), body


BARE = Endpoint("GET bare DRF view", "GET", "/bare/", 200)
ENDPOINTS = (
    BARE,
    Endpoint("POST actors/<id>/events/", "POST", f"{API}/actors/{{actor}}/events/", 201, writes=True),
    Endpoint("GET actors/<id>/version/", "GET", f"{API}/actors/{READ_ACTOR}/version/", 200),
    SYNC_VERSION := Endpoint("GET version/ as a sync view", "GET", f"/sync-version/{READ_ACTOR}/", 200),
)


@dataclass
class Target:
    """One running server: its name, port and credentials."""

    name: str
    ports: list[int]  # client thread i uses ports[i % len(ports)]
    token: str

    def connect(self, i: int, timeout: float = 30) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(HOST, self.ports[i % len(self.ports)], timeout=timeout)


@dataclass
class Sample:
    """One endpoint on one server in one round."""

    rate: float
    median_ms: float
    p99_ms: float


@dataclass
class Results:
    samples: dict[tuple[str, Endpoint], list[Sample]] = field(default_factory=dict)
    ratios: dict[tuple[str, Endpoint], list[float]] = field(default_factory=dict)


def server_command(server: str, port: int, workers: int) -> list[str]:
    """The command line that serves the bench project on HOST:port: gunicorn with `workers` sync workers, uvicorn as one process (or its supervisor's `workers`)."""
    if server == "gunicorn":
        return [sys.executable, "-m", "gunicorn", "bench.http_project.wsgi:application", "--bind", f"{HOST}:{port}", "--workers", str(workers), "--worker-class", "sync"]
    uvicorn = [sys.executable, "-m", "uvicorn", "bench.http_project.asgi:application", "--host", HOST, "--port", str(port), "--lifespan", "off", "--no-access-log"]
    return uvicorn + (["--workers", str(workers)] if server == "uvicorn-supervisor" else [])


@contextlib.contextmanager
def serve(server: str, workers: int, env: dict[str, str], log_dir: Path) -> Iterator[list[int]]:
    """Run a server until the block ends: gunicorn with its workers on one port, uvicorn as one process per worker, each on its own port.

    uvicorn's own ``--workers`` is used only by ``uvicorn-supervisor``, to show why: its
    supervisor binds the socket so that accepted connections lack TCP_NODELAY, and every
    response then waits about 40 ms for the client's delayed ACK (uvicorn issue 3149);
    single-process uvicorn is unaffected.
    """
    processes: list[subprocess.Popen[bytes]] = []
    ports: list[int] = []
    try:
        for i in range(workers if server == "uvicorn" else 1):
            ports.append(free_port(HOST))
            with open(log_dir / f"{server}-{i}.log", "wb") as log:
                processes.append(subprocess.Popen(server_command(server, ports[-1], workers), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        for i, (port, process) in enumerate(zip(ports, processes)):
            try:
                wait_for_port(HOST, port, 30, process)
            except (RuntimeError, TimeoutError) as e:
                raise RuntimeError(f"{server} did not start: {e}\n{(log_dir / f'{server}-{i}.log').read_text()}") from None
        yield ports
    finally:
        for process in processes:
            stop_process(process)


def request(conn: http.client.HTTPConnection, method: str, path: str, token: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One request on a kept connection (http.client reopens it when the server closed it)."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def load(target: Target, endpoint: Endpoint, n: int, concurrency: int, writers: list[Writer]) -> Sample:
    """n requests of one endpoint from `concurrency` threads; every answer must be the endpoint's success status."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    failures: list[str] = []
    start = threading.Barrier(concurrency + 1)
    done = threading.Barrier(concurrency + 1)

    def client(i: int) -> None:
        conn = target.connect(i)
        mine, writer = latencies[i], writers[i]
        try:
            start.wait()
            for _ in range(n // concurrency + (i < n % concurrency)):
                method, path, body = endpoint.next_request(writer)
                t0 = time.perf_counter()
                status, content = request(conn, method, path, target.token, body)
                mine.append(time.perf_counter() - t0)
                if status != endpoint.ok:
                    failures.append(f"{method} {path}: {status} {content[:300]!r}")
                    return
                writer.version += endpoint.writes
        except Exception as e:  # noqa: BLE001 - reported by the main thread, which raises
            failures.append(f"{endpoint.label}: {type(e).__name__}: {e}")
        finally:
            conn.close()
            done.wait()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    done.wait()
    elapsed = time.perf_counter() - t0
    if failures:
        raise RuntimeError(f"{target.name}: {len(failures)} request(s) failed, first: {failures[0]}")
    flat = sorted(x for part in latencies for x in part)
    p99 = flat[min(len(flat) - 1, round(0.99 * (len(flat) - 1)))]
    return Sample(len(flat) / elapsed, statistics.median(flat) * 1000, p99 * 1000)


def warm_up(target: Target, concurrency: int, writers: list[Writer], workers: int, requests: int) -> None:
    """Touch every endpoint on every worker (imports, the store's connection, the stream's setup) before measuring."""
    for i in range(len(target.ports)):
        conn = target.connect(i, timeout=60)
        status, content = request(conn, "GET", f"{API}/actors/{READ_ACTOR}/version/", target.token)
        if status != 200:
            raise RuntimeError(f"{target.name}: GET version/ answered {status}: {content[:300]!r}")
        if json.loads(content)["latest_version"] == 0:
            body = json.dumps({"event_type": "Bench", "version": 1, "data": {}}).encode()
            status, content = request(conn, "POST", f"{API}/actors/{READ_ACTOR}/events/", target.token, body)
            if status != 201:
                raise RuntimeError(f"{target.name}: the first POST answered {status}: {content[:300]!r}")
        conn.close()
    for endpoint in ENDPOINTS:
        load(target, endpoint, max(concurrency, min(20 * workers * concurrency, requests)), concurrency, writers)


def measure(targets: list[Target], rounds: int, n: int, concurrency: int, workers: int) -> Results:
    """Alternate servers and endpoints, rotating their order each round; keep every round's figures."""
    writers = {t.name: [Writer(f"http-{t.name}-{uuid.uuid4().hex[:6]}-{i}") for i in range(concurrency)] for t in targets}
    for t in targets:
        warm_up(t, concurrency, writers[t.name], workers, n)
    results = Results()
    pairs = [(t, e) for e in ENDPOINTS for t in targets]
    for r in range(rounds):
        shift = r % len(pairs)
        this_round: dict[tuple[str, Endpoint], Sample] = {}
        for target, endpoint in pairs[shift:] + pairs[:shift]:
            this_round[(target.name, endpoint)] = load(target, endpoint, n, concurrency, writers[target.name])
        for key, sample in this_round.items():
            results.samples.setdefault(key, []).append(sample)
            results.ratios.setdefault(key, []).append(sample.median_ms / this_round[(key[0], BARE)].median_ms)
    return results


def report(results: Results, servers: list[str], args: argparse.Namespace) -> None:
    print(f"{args.requests} requests per row and round from {args.concurrency} client threads (http.client), {args.workers} workers per server, medians of {args.rounds} rounds")
    w = max(len(server) for server in servers)
    print(f"{'server':<{w}} {'endpoint':<28} {'req/s':>8} {'median ms':>10} {'p99 ms':>8} {'/ bare':>7}  goal")
    for server in servers:
        for endpoint in ENDPOINTS:
            samples = results.samples[(server, endpoint)]
            ratio = statistics.median(results.ratios[(server, endpoint)])
            print(
                f"{server:<{w}} {endpoint.label:<28} {statistics.median(s.rate for s in samples):>8,.0f} {statistics.median(s.median_ms for s in samples):>10.2f}"
                f" {statistics.median(s.p99_ms for s in samples):>8.2f} {ratio:>6.2f}x  {verdict(endpoint, ratio)}"
            )
    print("ratios per round (endpoint median latency / bare view's):")
    for server in servers:
        for endpoint in ENDPOINTS[1:]:
            print(f"  {server:<{w}} {endpoint.label:<28} " + ", ".join(f"{x:.2f}" for x in results.ratios[(server, endpoint)]))


def verdict(endpoint: Endpoint, ratio: float) -> str:
    if endpoint is BARE:
        return ""
    if endpoint is SYNC_VERSION:
        return "(bench only: the view the API could have)"
    return ("ok" if ratio <= GOAL else "MISSED") + f" (<= {GOAL})"


def run(args: argparse.Namespace) -> None:
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = sorted(set(servers) - set(SERVERS))
    if unknown or not servers:
        raise SystemExit(f"--servers: {', '.join(unknown) or 'none given'} not among {', '.join(SERVERS)}")
    token = secrets.token_hex(16)
    stream = f"HTTPBENCH{uuid.uuid4().hex[:8].upper()}"
    with NatsServer() as nats_server, tempfile.TemporaryDirectory(prefix="http-bench-") as logs, contextlib.ExitStack() as stack:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "DJANGO_SETTINGS_MODULE": "bench.http_project.settings",
            "BENCH_NATS_URL": nats_server.url,
            "BENCH_STREAM": stream,
            "BENCH_TOKEN": token,
        }
        targets = [Target(s, stack.enter_context(serve(s, args.workers, env, Path(logs))), token) for s in servers]
        results = measure(targets, args.rounds, args.requests, args.concurrency, args.workers)
    report(results, servers, args)


def wsgi_call(application: Any, method: str, path: str, body: bytes | None, token: str) -> int:
    """One request straight through Django's WSGI handler, as a gunicorn worker makes it; returns the status."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": HOST,
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": HOST,
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "HTTP_ACCEPT": "application/json",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body or b"")),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body or b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    statuses: list[str] = []
    result = application(environ, lambda status, headers, exc_info=None: statuses.append(status))
    try:
        b"".join(result)
    finally:
        result.close()
    return int(statuses[0].split()[0])


def profile(args: argparse.Namespace) -> None:
    """cProfile of each endpoint's requests through Django's WSGI handler in this process: one gunicorn worker's path."""
    token = secrets.token_hex(16)
    with NatsServer() as nats_server:
        os.environ.update(
            DJANGO_SETTINGS_MODULE="bench.http_project.settings",
            BENCH_NATS_URL=nats_server.url,
            BENCH_STREAM=f"HTTPPROF{uuid.uuid4().hex[:8].upper()}",
            BENCH_TOKEN=token,
        )
        from django.core.wsgi import get_wsgi_application

        from django_eventstore import get_store

        application = get_wsgi_application()
        own = Writer(f"prof-{uuid.uuid4().hex[:6]}")

        def run_requests(endpoint: Endpoint, n: int, writer: Writer = own) -> None:
            for _ in range(n):
                status = wsgi_call(application, *endpoint.next_request(writer), token)
                if status != endpoint.ok:
                    raise RuntimeError(f"{endpoint.label} answered {status}")
                writer.version += endpoint.writes

        try:
            run_requests(Endpoint("the read actor's event", "POST", f"{API}/actors/{{actor}}/events/", 201, writes=True), 1, Writer(READ_ACTOR))
            for endpoint in ENDPOINTS:
                run_requests(endpoint, 50)  # warm up
            times: dict[Endpoint, list[float]] = {}
            for _ in range(5):  # plain timings first, the endpoints alternating
                for endpoint in ENDPOINTS:
                    t0 = time.perf_counter()
                    run_requests(endpoint, max(1, args.requests // 5))
                    times.setdefault(endpoint, []).append((time.perf_counter() - t0) / max(1, args.requests // 5) * 1e6)
            print(f"cProfile, {args.requests} requests an endpoint through Django's WSGI handler in-process; the request thread only")
            for endpoint in ENDPOINTS:
                profiler = cProfile.Profile()
                profiler.runcall(run_requests, endpoint, args.requests)
                plain = statistics.median(times[endpoint])
                print(f"\n== {endpoint.label}: {plain:,.0f} µs a request without the profiler (median of 5 alternating rounds); own time per request under it:")
                print_buckets(pstats.Stats(profiler), args.requests)
        finally:
            get_store().close()


BUCKETS = (
    ("asgiref (async_to_sync / sync_to_async)", ("asgiref",)),
    ("asyncio (a loop per async view)", ("asyncio",)),
    ("django_eventstore", ("django_eventstore",)),
    ("rest_framework", ("rest_framework",)),
    ("django", ("django",)),
)
WAITING = "handing over to another thread and waiting"


def bucket_of(function: str, filename: str) -> str:
    """The package a profiled function belongs to.

    A lock's acquire is the request thread waiting for another thread (the store's
    loop, or asgiref's); a socket send from the request thread is the wake-up of the
    store's loop, whose cost is mostly the wait for the GIL while that loop runs.
    """
    if filename == "~" and ("acquire" in function or "'send' of '_socket.socket'" in function):
        return WAITING
    return next((name for name, parts in BUCKETS if any(f"/{p}/" in filename for p in parts)), "other (stdlib, builtins)")


def print_buckets(stats: pstats.Stats, n: int) -> None:
    """Own time (tottime) per request, grouped by package, then the ten costliest functions."""
    functions = stats.get_stats_profile().func_profiles
    totals: dict[str, float] = {}
    for function, p in functions.items():
        bucket = bucket_of(function, p.file_name)
        totals[bucket] = totals.get(bucket, 0.0) + p.tottime
    whole = sum(totals.values())
    for bucket, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"  {bucket:<42} {seconds / n * 1e6:>7,.0f} µs  {seconds / whole:>4.0%}")
    print("  costliest functions (own time per request):")
    for function, p in sorted(functions.items(), key=lambda kv: -kv[1].tottime)[:10]:
        calls = int(str(p.ncalls).split("/")[0])
        print(f"    {p.tottime / n * 1e6:>6,.0f} µs  {calls / n:>5.1f} calls  {function}  {p.file_name.replace(str(ROOT) + '/', '')}:{p.line_number}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the table shows medians")
    parser.add_argument("--requests", type=int, default=1000, help="requests per endpoint, server and round")
    parser.add_argument("--concurrency", type=int, default=2, help="client threads, each with its own connection")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of each server")
    parser.add_argument("--servers", default="gunicorn,uvicorn", help="comma-separated: gunicorn, uvicorn, uvicorn-supervisor (uvicorn's own --workers)")
    parser.add_argument("--profile", action="store_true", help="profile the requests in-process (test client, cProfile) instead")
    args = parser.parse_args()
    for name in ("rounds", "requests", "concurrency", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, not {getattr(args, name)}")
    if args.requests < args.concurrency:
        parser.error(f"--requests ({args.requests}) must be at least --concurrency ({args.concurrency})")
    profile(args) if args.profile else run(args)


if __name__ == "__main__":
    main()
