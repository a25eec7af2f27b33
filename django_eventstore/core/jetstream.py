"""The store over NATS JetStream: the only module that talks to NATS.

Requests go out as plain publishes with a reply subject on one wildcard
inbox and are answered through one subscription callback: nats-py's
``request()`` costs 100-150 µs of Python per call, this path a fraction.
Writes use ``Nats-Expected-Last-Subject-Sequence`` so the server enforces
the version check; reads use direct gets (no consumers).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import logging
import socket
import threading
import time
import uuid
from typing import Any, Awaitable, Callable, Coroutine, Iterator, TypeVar
from urllib.parse import urlsplit, urlunsplit

import nats
import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.transport import TcpTransport

from .backend import DuplicateBatch, PubAck, RawMsg, ServerSummary, StreamChange, StreamSummary, WrongLastSequence
from .engine import EVENTS, SNAPSHOTS, Engine
from .errors import EventStoreError, EventStoreUnavailable, EventTooLarge
from .facade import EventStore
from .portal import Blocking, Portal, closed_while_running, in_caller_thread, on_loop, sleep
from .subjects import Subjects, subject_matches

log = logging.getLogger("django_eventstore")
T = TypeVar("T")

API = "$JS.API"
ERR_WRONG_LAST_SEQUENCE = 10071
ERR_STREAM_NOT_FOUND = 10059
ERR_BATCH_DUPLICATE = 10201
ERR_MAX_PAYLOAD = 10054
ERR_JETSTREAM_OFF = 10076
ERR_JETSTREAM_OFF_FOR_ACCOUNT = 10039
_MISSING = "missing"  # _stream_problem: the stream does not exist
_STATUS = "Status"


class _NoResponders(EventStoreUnavailable):
    """Nothing received a request ("no responders"): JetStream does not listen on that subject, now."""


class _SharedTcpTransport(TcpTransport):
    """nats-py's TCP transport, writable from sync callers' threads too: every write holds one lock.

    A caller's thread writes only when nothing is buffered, over plain TCP
    (TLS goes through the loop). If the socket takes part of the command, the
    loop writes the rest before anything else.
    """

    def __init__(self, ready: Callable[[], bool]) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.ready = ready  # the client is connected (CONNECT and SUBs sent) with nothing queued
        self._rest = b""
        self._cut = False  # a caller's command was cut off at an unknown point: nothing may follow it

    async def connect(self, *args: Any, **kwargs: Any) -> None:
        with self.lock:
            self._rest, self._cut = b"", False  # what was cut off with the old socket must not start the new one
        await super().connect(*args, **kwargs)

    def _write_rest(self) -> None:
        if self._rest:
            rest, self._rest = self._rest, b""
            super().write(rest)

    def write_rest(self) -> None:
        with self.lock:
            self._write_rest()

    def write(self, payload: bytes) -> None:
        with self.lock:
            if not self._cut:
                self._write_rest()
                super().write(payload)

    def writelines(self, payload: list[bytes]) -> None:
        with self.lock:
            if not self._cut:
                self._write_rest()
                super().writelines(payload)

    def write_from_thread(self, data: bytes, loop: asyncio.AbstractEventLoop) -> bool:
        """Write data from a thread other than the loop's; False (nothing written) when only the loop can."""
        with self.lock:
            transport = self._io_writer.transport if self._io_writer is not None else None
            sock = getattr(transport, "_sock", None)  # asyncio's plain TCP transport; TLS ones have none
            if not isinstance(sock, socket.socket) or self._cut or self._rest or not self.ready() or transport.is_closing() or transport.get_write_buffer_size():  # type: ignore[union-attr]
                return False
            try:
                sent = sock.send(data)
            except OSError:  # would block, or the connection broke: the loop's path deals with it
                return False
            except BaseException:  # e.g. a signal handler's exception: how much went out is unknown
                self._cut = True
                with contextlib.suppress(RuntimeError):  # a closed loop has closed the socket already
                    loop.call_soon_threadsafe(transport.abort)  # type: ignore[union-attr]  # nats-py reconnects
                raise
            if sent < len(data):
                self._rest = data[sent:]
                try:
                    loop.call_soon_threadsafe(self.write_rest)
                except RuntimeError:  # the loop is gone, and the connection with it
                    raise closed_while_running() from None
            return True


class _Client(NATS):
    """nats-py's client with a faster header parser giving the same result, over a transport sync callers can write to.

    nats-py 2.16 tests every header name character by character in a generator,
    which took 60% of the time of replaying an actor. nats-py is pinned (<2.17)
    because this overrides private members; tests cover every read path.
    """

    @property  # type: ignore[override]
    def _transport(self) -> Any:
        return self.__dict__["_shared_transport"]

    @_transport.setter
    def _transport(self, transport: Any) -> None:
        # nats-py makes a fresh TcpTransport for nats:// and tls:// servers: ours replaces it
        self.__dict__["_shared_transport"] = _SharedTcpTransport(self.ready_for_direct_writes) if type(transport) is TcpTransport else transport

    def ready_for_direct_writes(self) -> bool:
        """Connected, subscriptions re-sent (a reconnect is over), nothing queued in nats-py that a direct write would overtake."""
        return self.is_connected and self._reconnection_task_future is None and not self._pending

    @staticmethod
    def _parse_header_lines(raw: bytes) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in raw.decode("utf-8", "replace").split("\r\n"):
            name, sep, value = line.partition(":")
            if sep:
                key = name.strip()
                if key.isascii() and key.isprintable() and " " not in key:
                    out[key] = value.strip()
        return out


class _Batch:
    """Collects the replies of a batch direct get until its end-of-batch status."""

    __slots__ = ("msgs", "future")

    def __init__(self) -> None:
        self.msgs: list[Msg] = []
        self.future: asyncio.Future[Any] | Blocking | None = None


class _ReplyQueue(asyncio.Queue):  # type: ignore[type-arg]
    """Stands in for the inbox subscription's message queue: each reply is dispatched as it is parsed.

    nats-py would queue it for a subscription task to pick up on a later loop turn.
    """

    def __init__(self, dispatch: Callable[[Msg], None]):
        super().__init__()
        self._dispatch = dispatch

    def put_nowait(self, msg: Msg) -> None:
        self._dispatch(msg)


class _Doorbell:
    """A plain NATS subscription on a subject filter that wakes the live feed's waiters when a message is stored.

    The feed reads with direct gets (no consumer on the server); this only tells it when to read again.
    """

    def __init__(self) -> None:
        self.waiters: set[asyncio.Future[None]] = set()

    async def ring(self, msg: Msg) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)


class _Connection:
    """One nats-py connection and the inbox multiplexer over it.

    Shortcuts through nats-py 2.16 internals (pinned, and exercised by every
    store test): replies are dispatched while they are parsed; a request is
    written to the socket at once when nothing is queued ahead of it, instead
    of on the flusher task's next turn; and a sync caller's thread writes its
    request itself and blocks until the loop hands it the reply (one thread
    wake-up instead of three).
    """

    def __init__(self, nc: NATS, timeout: float, servers: str):
        self.nc = nc
        self.servers = servers  # for messages: comma-separated, credentials removed
        self.timeout = timeout
        self.prefix = nc.new_inbox() + "."
        self.pending: dict[str, asyncio.Future[Any] | Blocking | _Batch] = {}
        self.tokens = itertools.count()
        self.loop = asyncio.get_running_loop()
        self.doorbells: dict[str, _Doorbell] = {}

    async def doorbell(self, subject_filter: str) -> _Doorbell:
        """The doorbell of a subject filter, subscribed on first use for the connection's life."""
        bell = self.doorbells.get(subject_filter)
        if bell is None:
            bell = self.doorbells[subject_filter] = _Doorbell()
            await self.nc.subscribe(subject_filter, cb=bell.ring)
        return bell

    async def start(self) -> None:
        sub = await self.nc.subscribe(self.prefix + "*", pending_bytes_limit=0)
        sub._pending_queue = _ReplyQueue(self._on_reply)
        await self.nc.flush(math.ceil(self.timeout))  # the SUB must reach the server before a request written directly

    def _on_reply(self, msg: Msg) -> None:
        waiter = self.pending.get(msg.subject[len(self.prefix) :])
        if waiter is None:
            return
        if isinstance(waiter, _Batch):
            status = msg.headers.get(_STATUS) if msg.headers else None
            if status is None:
                waiter.msgs.append(msg)
            elif waiter.future is not None and not waiter.future.done():
                waiter.future.set_result(msg)
        elif not waiter.done():
            waiter.set_result(msg)

    def _command(self, subject: str, payload: bytes, reply: str, headers: dict[str, str] | None) -> bytes:
        """The protocol line(s) of a publish, as nats-py writes them."""
        if len(payload) > self.nc.max_payload:
            raise nats.errors.MaxPayloadError
        if headers:
            hdr = "".join([f"{k}: {v}\r\n" for k, v in headers.items()]).encode()
            hdr = b"NATS/1.0\r\n" + hdr + b"\r\n"
            return f"HPUB {subject} {reply} {len(hdr)} {len(hdr) + len(payload)}\r\n".encode() + hdr + payload + b"\r\n"
        return f"PUB {subject} {reply} {len(payload)}\r\n".encode() + payload + b"\r\n"

    def _shared_transport(self) -> _SharedTcpTransport | None:
        """The transport when a command may go straight onto it: connected over TCP, nothing queued in nats-py."""
        transport = self.nc._transport
        return transport if isinstance(transport, _SharedTcpTransport) and transport.ready() else None

    def _write_from_thread(self, subject: str, payload: bytes, reply: str, headers: dict[str, str] | None) -> bool:
        transport = self.nc._transport  # whether it is ready, write_from_thread checks under its lock
        return isinstance(transport, _SharedTcpTransport) and transport.write_from_thread(self._command(subject, payload, reply, headers), self.loop)

    async def send(self, subject: str, payload: bytes, reply: str = "", headers: dict[str, str] | None = None) -> None:
        """Publish, straight onto the socket when nothing is queued (from a sync caller's thread too), else through nats-py."""
        if in_caller_thread():
            if self._write_from_thread(subject, payload, reply, headers):
                return
            await on_loop()
        transport = self._shared_transport()
        if transport is not None:
            transport.write(self._command(subject, payload, reply, headers))
            return
        await self.nc.publish(subject, payload, reply=reply, headers=headers)

    @property
    def url(self) -> str:
        u = self.nc.connected_url
        return f"{u.scheme}://{u.hostname}:{u.port}" if u else "nats://(disconnected)"

    @staticmethod
    def _time_out(futures: list[asyncio.Future[Any]]) -> None:
        for future in futures:
            if not future.done():
                future.set_exception(asyncio.TimeoutError())

    @contextlib.contextmanager
    def _errors(self, subject: str, wait: float, payload: bytes) -> Iterator[None]:
        """Our errors for a request's: no answer in time, too large, a NATS error."""
        try:
            yield
        except asyncio.TimeoutError:
            raise EventStoreUnavailable(f"NATS did not answer within {wait:g}s ({subject}); servers tried: {self.servers}") from None
        except nats.errors.MaxPayloadError:
            raise EventTooLarge(len(payload), self.nc.max_payload) from None
        except nats.errors.Error as e:
            raise EventStoreUnavailable(f"NATS error ({e}); servers tried: {self.servers}") from None

    async def _roundtrip(self, subject: str, payload: bytes, headers: dict[str, str] | None, batch: _Batch | None, timeout: float | None) -> Msg:
        token = str(next(self.tokens))
        wait = self.timeout if timeout is None else timeout
        with self._errors(subject, wait, payload):
            if in_caller_thread():
                msg = await self._roundtrip_from_thread(token, subject, payload, headers, batch, wait)
                if msg is not None:
                    return msg
                await on_loop()
            return await self._roundtrip_on_loop(token, subject, payload, headers, batch, wait)

    async def request_many(self, requests: list[tuple[str, bytes, dict[str, str] | None]]) -> list[Msg]:
        """Send every request, then wait for all their replies, within TIMEOUT in all (on the loop: one flight)."""
        await on_loop()
        tokens: list[str] = []
        futures: list[asyncio.Future[Msg]] = []
        timer = self.loop.call_later(self.timeout, self._time_out, futures)
        try:
            for subject, payload, headers in requests:
                with self._errors(subject, self.timeout, payload):
                    tokens.append(str(next(self.tokens)))
                    futures.append(self.loop.create_future())
                    self.pending[tokens[-1]] = futures[-1]
                    await self.send(subject, payload, self.prefix + tokens[-1], headers)
            replies = []
            for (subject, _, _), future in zip(requests, futures):
                with self._errors(subject, self.timeout, b""):
                    replies.append(await future)
            return replies
        finally:
            timer.cancel()
            for token, future in zip(tokens, futures):
                del self.pending[token]
                if future.done() and not future.cancelled():
                    future.exception()  # retrieved: timed-out futures we did not await log no warning

    def _register(self, token: str, future: asyncio.Future[Any] | Blocking, batch: _Batch | None) -> None:
        if batch is None:
            self.pending[token] = future
        else:
            batch.future = future
            self.pending[token] = batch

    async def _roundtrip_from_thread(self, token: str, subject: str, payload: bytes, headers: dict[str, str] | None, batch: _Batch | None, timeout: float) -> Msg | None:
        """The round trip written and awaited by a sync caller's thread; None when it could not write."""
        reply = Blocking(timeout)
        self._register(token, reply, batch)
        try:
            if not self._write_from_thread(subject, payload, self.prefix + token, headers):
                return None
            return await reply  # type: ignore[no-any-return]
        finally:
            del self.pending[token]

    async def _roundtrip_on_loop(self, token: str, subject: str, payload: bytes, headers: dict[str, str] | None, batch: _Batch | None, timeout: float) -> Msg:
        future = self.loop.create_future()
        self._register(token, future, batch)
        timer = self.loop.call_later(timeout, self._time_out, [future])
        try:
            await self.send(subject, payload, self.prefix + token, headers)
            return await future  # type: ignore[no-any-return]
        finally:
            timer.cancel()
            del self.pending[token]

    def fail_waiting_threads(self) -> None:
        """Fail the sync callers still waiting for a reply: the connection is closing."""
        for waiter in list(self.pending.values()):
            future = waiter.future if isinstance(waiter, _Batch) else waiter
            if isinstance(future, Blocking):
                future.set_exception(closed_while_running())

    async def request(self, subject: str, payload: bytes = b"", headers: dict[str, str] | None = None, timeout: float | None = None) -> Msg:
        """The reply (waiting at most timeout, default TIMEOUT); _NoResponders when nothing received the request."""
        return _answered(subject, await self._roundtrip(subject, payload, headers, None, timeout))

    async def request_batch(self, subject: str, payload: bytes, timeout: float | None = None) -> tuple[list[Msg], Msg]:
        """The replies of a batch direct get and its end-of-batch status message."""
        batch = _Batch()
        end = _answered(subject, await self._roundtrip(subject, payload, None, batch, timeout))
        return batch.msgs, end

    async def api(self, subject: str, request: dict[str, Any] | None = None, timeout: float | None = None) -> dict[str, Any]:
        msg = await self.request(f"{API}.{subject}", json.dumps(request).encode() if request is not None else b"", timeout=timeout)
        return json.loads(msg.data)


def _answered(subject: str, msg: Msg) -> Msg:
    """msg, unless it is the server's "no responders" status: nothing received the request."""
    if msg.headers and msg.headers.get(_STATUS) == "503":
        raise _NoResponders(f"nothing answers on {subject}: is JetStream enabled and the stream set up (manage.py eventstore_setup)?")
    return msg


def redact(url: str) -> str:
    """The URL without user:password@ (credentials never go into messages or logs)."""
    parts = urlsplit(url)
    if not parts.username and not parts.password:
        return url
    host = parts.hostname or ""
    return urlunsplit(parts._replace(netloc=f"{host}:{parts.port}" if parts.port else host))


def _api_error(resp: dict[str, Any]) -> tuple[int, str]:
    err = resp.get("error") or {}
    return int(err.get("err_code") or 0), str(err.get("description") or err)


def _raw(msg: Msg) -> RawMsg:
    headers = msg.headers or {}
    return RawMsg(headers.get("Nats-Subject", ""), int(headers.get("Nats-Sequence", 0)), headers, msg.data)


def _check_direct_status(msg: Msg, what: str) -> bool:
    """True when the direct get found a message; False on 404; error otherwise."""
    headers = msg.headers or {}
    status = headers.get(_STATUS)
    if status is None:
        return True
    if status == "404":
        return False
    raise EventStoreError(f"direct get of {what} failed: {status} {headers.get('Description', '')}".strip())


class JetStreamBackend:
    """Stream primitives over a JetStream connection, opened lazily on first use."""

    def __init__(
        self,
        servers: list[str],
        subjects: Subjects,
        stream: str = "EVENTSTORE",
        replicas: int = 1,
        snapshots_keep: int = 1,
        timeout: float = 5.0,
        auto_setup: bool = True,
        connect_options: dict[str, Any] | None = None,
    ):
        self.servers = list(servers)
        self.servers_text = ", ".join(redact(s) for s in self.servers)
        self.subject_names = subjects
        self.stream_names = {EVENTS: stream, SNAPSHOTS: f"{stream}_SNAPSHOTS"}
        self.replicas = replicas
        self.snapshots_keep = snapshots_keep
        self.timeout = timeout
        self.auto_setup = auto_setup
        self.connect_options = dict(connect_options or {})
        self._conn: _Connection | None = None
        self._connecting: asyncio.Lock | None = None
        self._set_up = False  # streams created or checked on this connection
        self.max_payload = 1024 * 1024

    # ----- connection -----

    async def _connection(self, auto_setup: bool = True) -> _Connection:
        """The open connection, connecting (and, with AUTO_SETUP, setting up the streams once) if needed."""
        conn = self._conn
        if conn is not None and not conn.nc.is_closed and (self._set_up or not (auto_setup and self.auto_setup)):
            return conn
        await on_loop()
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._conn is None or self._conn.nc.is_closed:
                # a task of its own: connect's timeout needs a current task, the portal's eager driver has none
                conn = await asyncio.ensure_future(self._connect())
                self._set_up = False  # before the connection is visible to sync callers' fast path
                self._conn = conn
            if auto_setup and self.auto_setup and not self._set_up:
                await self._setup(self._conn, dry_run=False)
            return self._conn

    async def _connect(self) -> _Connection:
        nc = _Client()

        # Quiet while connecting (a failure raises EventStoreUnavailable) and on close;
        # then one warning per outage, not one per reconnect attempt.
        quiet = True

        async def on_error(e: Exception) -> None:
            nonlocal quiet
            log.log(logging.DEBUG if quiet else logging.WARNING, "NATS error: %s", e)
            quiet = True

        async def on_disconnect() -> None:
            if not nc.is_closed and not nc.is_draining:
                log.warning("disconnected from NATS; reconnecting in the background")

        async def on_reconnect() -> None:
            nonlocal quiet
            quiet = False
            log.warning("reconnected to NATS at %s", nc.connected_url.netloc if nc.connected_url else "?")

        options: dict[str, Any] = {
            "servers": self.servers,
            "connect_timeout": min(self.timeout, 2.0),
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": 0.5,
            "error_cb": on_error,
            "disconnected_cb": on_disconnect,
            "reconnected_cb": on_reconnect,
            "name": "django-eventstore",
        }
        options.update(self.connect_options)
        try:
            await asyncio.wait_for(nc.connect(**options), self.timeout)
            conn = _Connection(nc, self.timeout, self.servers_text)  # after connect: it may set inbox_prefix
            await conn.start()
        except (asyncio.TimeoutError, OSError, nats.errors.Error) as e:
            try:
                await nc.close()
            except Exception:  # noqa: BLE001 - best effort: the connection never worked
                pass
            detail = f": {e}" if str(e) else ""
            raise EventStoreUnavailable(
                f"could not connect to NATS within {self.timeout}s; servers tried: {self.servers_text}{detail}"
            ) from None
        quiet = False
        self.max_payload = nc.max_payload
        return conn

    def forget(self) -> None:
        self._conn = None
        self._connecting = None

    async def close(self) -> None:
        await on_loop()
        conn, self._conn = self._conn, None
        self._connecting = None
        if conn is None or conn.nc.is_closed:
            return
        try:
            if conn.nc.is_connected:
                await conn.nc.drain()
            else:
                await conn.nc.close()
        except Exception as e:  # noqa: BLE001 - closing a broken connection is best effort (nats-py can raise TypeError here)
            log.debug("closing the NATS connection: %r", e)
        finally:
            conn.fail_waiting_threads()

    # ----- reads -----

    def _direct(self, stream: str) -> str:
        return f"{API}.DIRECT.GET.{self.stream_names[stream]}"

    async def _answer(
        self, conn: _Connection, stream: str, ask: Callable[[float], Awaitable[T]], *, subject: str | None = None, direct: bool = False, probe: bool = True
    ) -> T:
        """ask(timeout)'s answer, sending the request again while nothing receives it, until TIMEOUT in all.

        "No responders" means JetStream does not listen (a server restarting, a
        leader election) and nobody got the request, so sending it again is
        safe; a request that went unanswered (timed out) is not sent again.
        With probe, one look at the stream tells a setup problem, which fails
        at once (a missing stream is created again under AUTO_SETUP).
        """
        started = time.monotonic()
        deadline = started + self.timeout
        pause = 0.05
        while True:
            try:
                return await ask(max(deadline - time.monotonic(), 0.001))
            except _NoResponders:
                pass
            if probe:
                probe = False
                problem = await self._stream_problem(conn, stream, subject, direct, max(deadline - time.monotonic(), 0.001))
                if problem == _MISSING and self.auto_setup:
                    self._set_up = False
                    await self._connection()  # sets the streams up again
                    continue
                if problem is not None:
                    raise EventStoreError(problem)
            if deadline - time.monotonic() < pause + 0.05:
                raise EventStoreUnavailable(
                    f"JetStream did not answer for {time.monotonic() - started:.1f}s (stream {self.stream_names[stream]}): "
                    f"is JetStream enabled? servers tried: {self.servers_text}"
                )
            await sleep(pause)
            pause = min(pause * 2, 0.5)

    async def _stream_problem(self, conn: _Connection, stream: str, subject: str | None, direct: bool, timeout: float) -> str | None:
        """What keeps the stream from answering, when JetStream can say; None when JetStream does not answer at all.

        _MISSING when the stream does not exist.
        """
        name = self.stream_names[stream]
        try:
            info = await conn.api(f"STREAM.INFO.{name}", timeout=timeout)
        except _NoResponders:
            return None
        setup = "run manage.py eventstore_setup (or leave AUTO_SETUP on)"
        if "error" in info:
            code, text = _api_error(info)
            if code == ERR_STREAM_NOT_FOUND:
                return _MISSING if self.auto_setup else f"stream {name} does not exist: {setup}"
            if code in (ERR_JETSTREAM_OFF, ERR_JETSTREAM_OFF_FOR_ACCOUNT):
                return f"{text}: the store needs JetStream (nats-server -js, or JetStream enabled for the account)"
            return None  # e.g. "temporarily unavailable": wait
        config = info.get("config") or {}
        filters = config.get("subjects") or []
        if subject is not None and not any(subject_matches(f, subject) for f in filters):
            return f"stream {name} does not take subject {subject} (it takes {', '.join(filters) or 'none'}): {setup}"
        if direct and not config.get("allow_direct"):
            return f"stream {name} does not allow direct gets, which the store reads with: {setup}"
        return None

    async def _api(self, conn: _Connection, subject: str, request: dict[str, Any] | None = None) -> dict[str, Any]:
        """A JetStream API call, sent again while JetStream does not listen (see _answer)."""
        return await self._answer(conn, EVENTS, lambda timeout: conn.api(subject, request, timeout), probe=False)

    async def last_msg(self, stream: str, subject: str) -> RawMsg | None:
        conn = await self._connection()
        msg = await self._answer(conn, stream, lambda timeout: conn.request(f"{self._direct(stream)}.{subject}", timeout=timeout), direct=True)
        return _raw(msg) if _check_direct_status(msg, subject) else None

    async def msg_at(self, stream: str, seq: int) -> RawMsg | None:
        conn = await self._connection()
        payload = json.dumps({"seq": seq}).encode()
        msg = await self._answer(conn, stream, lambda timeout: conn.request(self._direct(stream), payload, timeout=timeout), direct=True)
        return _raw(msg) if _check_direct_status(msg, f"sequence {seq}") else None

    async def _batch(self, stream: str, request: dict[str, Any], what: str) -> tuple[list[RawMsg], int]:
        conn = await self._connection()
        payload = json.dumps(request).encode()
        msgs, end = await self._answer(conn, stream, lambda timeout: conn.request_batch(self._direct(stream), payload, timeout), direct=True)
        headers = end.headers or {}
        status = headers.get(_STATUS)
        if status == "404":
            return [], 0
        if status != "204":
            raise EventStoreError(f"batch direct get of {what} failed: {status} {headers.get('Description', '')}".strip())
        return [_raw(m) for m in msgs], int(headers.get("Nats-Num-Pending", 0))

    async def next_msgs(self, stream: str, subject_filter: str, start_seq: int, batch: int) -> tuple[list[RawMsg], int]:
        return await self._batch(stream, {"seq": max(start_seq, 1), "next_by_subj": subject_filter, "batch": batch}, subject_filter)

    async def last_msgs(self, stream: str, subjects: list[str]) -> dict[str, RawMsg]:
        out: dict[str, RawMsg] = {}
        for i in range(0, len(subjects), 1000):
            chunk = subjects[i : i + 1000]
            msgs, _ = await self._batch(stream, {"multi_last": chunk, "batch": len(chunk)}, f"{len(chunk)} subjects")
            out.update((m.subject, m) for m in msgs)
        return out

    async def subjects(self, stream: str, subject_filter: str) -> dict[str, int]:
        """Every subject matching the filter with its message count, paging past the server's 100,000 a reply."""
        conn = await self._connection()
        out: dict[str, int] = {}
        offset = 0
        while True:
            request = {"subjects_filter": subject_filter, "offset": offset}
            resp = await self._api(conn, f"STREAM.INFO.{self.stream_names[stream]}", request)
            if "error" in resp:
                raise EventStoreError(f"stream info of {self.stream_names[stream]} failed: {_api_error(resp)[1]}")
            page = (resp.get("state") or {}).get("subjects") or {}
            out.update(page)
            offset += len(page)
            if not page or offset >= int(resp.get("total", 0)):
                return out

    async def wait_for_messages(self, stream: str, subject_filter: str, after_seq: int, timeout: float) -> bool:
        conn = await self._connection()
        await on_loop()
        bell = await conn.doorbell(subject_filter)
        waiter: asyncio.Future[None] = conn.loop.create_future()
        bell.waiters.add(waiter)
        try:
            msgs, _ = await self.next_msgs(stream, subject_filter, after_seq + 1, 1)  # stored before the bell listened?
            if msgs:
                return True
            try:
                await asyncio.wait_for(waiter, timeout)
            except asyncio.TimeoutError:
                return False
            return True
        finally:
            bell.waiters.discard(waiter)

    # ----- writes -----

    async def publish(self, stream: str, subject: str, headers: dict[str, str], body: bytes, expected_last_seq: int | None) -> PubAck:
        conn = await self._connection()
        if expected_last_seq is not None:
            headers = {**headers, "Nats-Expected-Last-Subject-Sequence": str(expected_last_seq)}
        msg = await self._answer(conn, stream, lambda timeout: conn.request(subject, body, headers, timeout), subject=subject)
        resp = json.loads(msg.data)
        if "error" in resp:
            self._raise_publish_error(resp, subject)
        return PubAck(resp["seq"], bool(resp.get("duplicate")))

    def _raise_publish_error(self, resp: dict[str, Any], subject: str) -> None:
        code, text = _api_error(resp)
        if code == ERR_WRONG_LAST_SEQUENCE:
            tail = text.rsplit(":", 1)[-1].strip()
            raise WrongLastSequence(int(tail) if tail.isdigit() else None)
        if code == ERR_BATCH_DUPLICATE:
            raise DuplicateBatch(text)
        if code == ERR_MAX_PAYLOAD:
            raise EventTooLarge(0, self.max_payload)
        if "atomic" in text.lower():
            raise EventStoreError(
                f"multi-event append needs atomic batch publish (nats-server 2.12+ and allow_atomic on stream "
                f"{self.stream_names[EVENTS]}; run manage.py eventstore_setup): {text}"
            )
        raise EventStoreError(f"publish to {subject} refused by the server: {text} (error {code})")

    async def publish_batch(self, subject: str, messages: list[tuple[dict[str, str], bytes]], expected_last_seq: int) -> int:
        conn = await self._connection()
        if not self._supports_atomic(conn):
            raise EventStoreError(
                f"a multi-event append needs atomic batch publish, which nats-server {conn.nc.connected_server_version.major}."
                f"{conn.nc.connected_server_version.minor} does not have (2.12+); nothing was stored"
            )
        batch_id = uuid.uuid4().hex
        last = len(messages)
        for n, (headers, body) in enumerate(messages, start=1):
            h = {**headers, "Nats-Batch-Id": batch_id, "Nats-Batch-Sequence": str(n)}
            if n == 1:
                h["Nats-Expected-Last-Subject-Sequence"] = str(expected_last_seq)
            if n < last:
                try:
                    await conn.send(subject, body, headers=h)
                except nats.errors.Error as e:
                    raise EventStoreUnavailable(f"NATS at {conn.url}: {e}") from None
                continue
            h["Nats-Batch-Commit"] = "1"
            try:
                msg = await conn.request(subject, body, h)
            except _NoResponders:  # not sent again alone: a batch never committed is dropped by the server
                raise EventStoreUnavailable(f"JetStream did not take the batch (nothing was stored); servers tried: {self.servers_text}") from None
            resp = json.loads(msg.data)
            if "error" in resp:
                self._raise_publish_error(resp, subject)
            return int(resp["seq"])
        raise AssertionError("empty batch")

    async def last_seq(self, stream: str) -> int:
        conn = await self._connection()
        info = await self._api(conn, f"STREAM.INFO.{self.stream_names[stream]}")
        if "error" in info:
            if _api_error(info)[0] == ERR_STREAM_NOT_FOUND:
                return 0  # the publishes will tell (and AUTO_SETUP create it again)
            raise EventStoreError(f"cannot read stream {self.stream_names[stream]}: {_api_error(info)[1]}")
        return int((info.get("state") or {}).get("last_seq", 0))

    async def publish_pipelined(self, stream: str, messages: list[tuple[str, dict[str, str], bytes, int]], expected_last_seq: int) -> list[PubAck | EventStoreError]:
        conn = await self._connection()
        requests: list[tuple[str, bytes, dict[str, str] | None]] = []
        for i, (subject, headers, body, subject_seq) in enumerate(messages):
            expect = {"Nats-Expected-Last-Sequence": str(expected_last_seq + i), "Nats-Expected-Last-Subject-Sequence": str(subject_seq)}
            if i:  # chained: a message after a refused one is refused too, whatever else lands meanwhile
                expect["Nats-Expected-Last-Msg-Id"] = messages[i - 1][1]["Nats-Msg-Id"]
            requests.append((subject, body, {**headers, **expect}))
        results: list[PubAck | EventStoreError] = []
        for (subject, _, _), msg in zip(requests, await conn.request_many(requests)):
            try:
                resp = json.loads(_answered(subject, msg).data)
                if "error" in resp:
                    self._raise_publish_error(resp, subject)
                results.append(PubAck(resp["seq"], bool(resp.get("duplicate"))))
            except EventStoreError as e:
                results.append(e)
        return results

    # ----- administration -----

    def _desired(self, atomic: bool) -> dict[str, dict[str, Any]]:
        common = {"storage": "file", "retention": "limits", "num_replicas": self.replicas, "allow_direct": True}
        events = {
            **common,
            "name": self.stream_names[EVENTS],
            "subjects": [self.subject_names.events_filter()],
            "deny_delete": True,
            "deny_purge": True,
        }
        if atomic:
            events["allow_atomic"] = True
        snapshots = {
            **common,
            "name": self.stream_names[SNAPSHOTS],
            "subjects": [self.subject_names.snapshots_filter()],
            "max_msgs_per_subject": self.snapshots_keep,
        }
        return {EVENTS: events, SNAPSHOTS: snapshots}

    @staticmethod
    def _supports_atomic(conn: _Connection) -> bool:
        version = conn.nc.connected_server_version
        return (version.major, version.minor) >= (2, 12)

    async def setup(self, dry_run: bool = False) -> list[StreamChange]:
        return await self._setup(await self._connection(auto_setup=False), dry_run)

    async def _setup(self, conn: _Connection, dry_run: bool) -> list[StreamChange]:
        changes = []
        for config in self._desired(self._supports_atomic(conn)).values():
            name = config["name"]
            info = await self._api(conn, f"STREAM.INFO.{name}")
            if "error" in info:
                code, text = _api_error(info)
                if code != ERR_STREAM_NOT_FOUND:
                    raise EventStoreError(f"cannot read stream {name}: {text}")
                if not dry_run:
                    self._check_api(await self._api(conn, f"STREAM.CREATE.{name}", config), f"create stream {name}")
                changes.append(StreamChange(name, "created", {k: (None, v) for k, v in config.items() if k != "name"}))
                continue
            current = info["config"]
            diff = {k: (current.get(k), v) for k, v in config.items() if current.get(k) != v}
            if not diff:
                changes.append(StreamChange(name, "unchanged"))
                continue
            if not dry_run:
                self._check_api(await self._api(conn, f"STREAM.UPDATE.{name}", {**current, **config}), f"update stream {name}")
            changes.append(StreamChange(name, "updated", diff))
        if not dry_run:
            self._set_up = True
        return changes

    @staticmethod
    def _check_api(resp: dict[str, Any], what: str) -> None:
        if "error" in resp:
            raise EventStoreError(f"could not {what}: {_api_error(resp)[1]}")

    async def server_summary(self) -> ServerSummary:
        conn = await self._connection()
        account = await self._api(conn, "INFO")
        streams = []
        for name in self.stream_names.values():
            info = await self._api(conn, f"STREAM.INFO.{name}")
            if "error" in info:
                raise EventStoreError(f"cannot read stream {name}: {_api_error(info)[1]}")
            state, config = info.get("state", {}), info.get("config", {})
            streams.append(
                StreamSummary(
                    name=name,
                    subjects=config.get("subjects", []),
                    messages=state.get("messages", 0),
                    bytes=state.get("bytes", 0),
                    first_seq=state.get("first_seq", 0),
                    last_seq=state.get("last_seq", 0),
                    subject_count=state.get("num_subjects", 0),
                    replicas=config.get("num_replicas", 1),
                    storage=config.get("storage", ""),
                    cluster=info.get("cluster", {}),
                    config=config,
                )
            )
        account.pop("type", None)
        v = conn.nc.connected_server_version
        version = f"{v.major}.{v.minor}.{v.patch}" + (f"-{v.dev}" if v.dev else "")
        return ServerSummary(url=conn.url, version=version, streams=streams, account=account)


class JetStreamEventStore(EventStore):
    """The store over JetStream, run on the process's portal loop; see EventStore for the API."""

    def __init__(
        self,
        servers: list[str] | str,
        *,
        stream: str = "EVENTSTORE",
        subject_prefix: str = "es",
        replicas: int = 1,
        snapshots_keep: int = 1,
        timeout: float = 5.0,
        auto_setup: bool = True,
        connect_options: dict[str, Any] | None = None,
        cache_size: int = 10_000,
    ):
        subjects = Subjects(subject_prefix)
        self.backend = JetStreamBackend(
            [servers] if isinstance(servers, str) else servers,
            subjects,
            stream,
            replicas,
            snapshots_keep,
            timeout,
            auto_setup,
            connect_options,
        )
        super().__init__(Engine(self.backend, subjects, cache_size))
        self.portal = Portal(on_fork=self._after_fork)

    def _after_fork(self) -> None:
        self.backend.forget()
        self.engine.forget_cache()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.portal.drive(coro)

    async def _acall(self, coro: Coroutine[Any, Any, T]) -> T:
        return await self.portal.acall(coro)

    def close(self) -> None:
        super().close()
        self.portal.stop()
