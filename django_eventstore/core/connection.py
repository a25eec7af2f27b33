"""One NATS connection per store, used only through nats-py's public API.

Requests are plain publishes with a reply subject on one wildcard inbox,
answered through one subscription callback that hands each reply to its
waiting future by token: nats-py's ``request()`` spends 100-150 µs of Python
per call on a fresh future, a timeout task and reply parsing; this path a
fraction of it. "No responders" (JetStream not listening on a subject) is told
apart from a request that went unanswered.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
from typing import Any, Iterator
from urllib.parse import urlsplit, urlunsplit

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from .errors import EventStoreUnavailable, EventTooLarge

log = logging.getLogger("django_eventstore")

API = "$JS.API"
_URL_WITH_CREDENTIALS = re.compile(r"([a-z][a-z0-9+.-]*://)[^/@\s]*@([^\s/]+)", re.IGNORECASE)
STATUS = "Status"


class NoResponders(EventStoreUnavailable):
    """Nothing received a request ("no responders"): JetStream does not listen on that subject, now."""


class NoAnswer(EventStoreUnavailable):
    """A request went unanswered within its time: the server may be gone, or the answer lost on the way."""


class Unreachable(EventStoreUnavailable):
    """No server of SERVERS can be reached now: calls fail at once instead of each waiting TIMEOUT."""


class Health:
    """Whether NATS can be reached, kept from nats-py's connection callbacks.

    After a disconnect, nats-py tries the servers in turn; once every one of
    them has failed an attempt, the store is unreachable until a reconnect.
    """

    def __init__(self) -> None:
        self.failed_attempts = 0
        self.unreachable = False
        self.last_error: BaseException | None = None  # the latest connect or reconnect failure, for messages
        self.refused_credentials = False  # a server said "authorization violation" since the last success

    def failed(self, error: BaseException) -> None:
        self.last_error = error
        if _is_authorization_violation(error):
            self.refused_credentials = True

    def reason(self) -> str:
        """Why connecting failed, as people read it: the refused credentials first (a reset may hide them)."""
        if self.refused_credentials:
            return " (authorization violation: the server refused the credentials)"
        return reason(self.last_error)

    def disconnected(self) -> None:
        self.failed_attempts = 0

    def attempt_failed(self, servers: int) -> None:
        self.failed_attempts += 1
        self.unreachable = self.failed_attempts >= max(servers, 1)

    def reconnected(self) -> None:
        self.failed_attempts = 0
        self.unreachable = False
        self.refused_credentials = False


class _Batch:
    """Collects the replies of a batch direct get until its end-of-batch status."""

    __slots__ = ("msgs", "future", "timer")

    def __init__(self, future: asyncio.Future[Msg]) -> None:
        self.msgs: list[Msg] = []
        self.future = future
        self.timer: asyncio.TimerHandle | None = None

    def time_out_when_idle(self, loop: asyncio.AbstractEventLoop, wait: float) -> None:
        """Fail the batch when no reply came for wait seconds: a long batch that keeps flowing goes on."""
        seen = len(self.msgs)

        def check() -> None:
            nonlocal seen
            if self.future.done():
                return
            if len(self.msgs) > seen:
                seen = len(self.msgs)
                self.timer = loop.call_later(wait, check)
            else:
                _time_out(self.future)

        self.timer = loop.call_later(wait, check)


class Doorbell:
    """A plain NATS subscription on a subject filter that wakes the live feed's waiters when a message is stored.

    The feed reads with direct gets (no consumer on the server); this only tells it when to read again.
    """

    def __init__(self) -> None:
        self.waiters: set[asyncio.Future[None]] = set()

    async def ring(self, msg: Msg) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)


def redact(url: str) -> str:
    """The URL without user:password@ or token@ (credentials never go into messages or logs)."""
    parts = urlsplit(url)
    if not parts.username and not parts.password:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _time_out(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


def _time_out_all(futures: list[asyncio.Future[Msg]]) -> None:
    for future in futures:
        _time_out(future)


def answered(subject: str, msg: Msg) -> Msg:
    """msg, unless it is the server's "no responders" status: nothing received the request."""
    if msg.headers and msg.headers.get(STATUS) == "503":
        raise NoResponders(f"nothing answers on {subject}: JetStream is not enabled, or not listening there now")
    return msg


class Connection:
    """A nats-py client and the inbox multiplexer over it; every method runs on the connection's loop."""

    def __init__(self, nc: NATS, timeout: float, servers: str, health: Health | None = None):
        self.nc = nc
        self.health = health or Health()
        self.servers = servers  # for messages: comma-separated, credentials removed
        self.timeout = timeout
        self.prefix = nc.new_inbox() + "."
        self.pending: dict[str, asyncio.Future[Msg] | _Batch] = {}
        self.tokens = itertools.count()
        self.loop = asyncio.get_running_loop()
        self.doorbells: dict[str, Doorbell] = {}

    async def start(self) -> None:
        # unbounded: a batch direct get answers thousands of messages at once
        await self.nc.subscribe(self.prefix + "*", cb=self._on_reply, pending_msgs_limit=0, pending_bytes_limit=0)

    async def _on_reply(self, msg: Msg) -> None:
        waiter = self.pending.get(msg.subject[len(self.prefix) :])
        if waiter is None:
            return
        if isinstance(waiter, _Batch):
            if msg.headers is None or STATUS not in msg.headers:
                waiter.msgs.append(msg)
            elif not waiter.future.done():
                waiter.future.set_result(msg)
        elif not waiter.done():
            waiter.set_result(msg)

    @property
    def url(self) -> str:
        u = self.nc.connected_url
        return f"{u.scheme}://{u.hostname}:{u.port}" if u else "nats://(disconnected)"

    @property
    def max_payload(self) -> int:
        return self.nc.max_payload

    def server_version(self) -> tuple[int, int, int, str]:
        v = self.nc.connected_server_version
        return v.major, v.minor, v.patch, v.dev

    @contextlib.contextmanager
    def errors(self, subject: str, wait: float, payload: bytes) -> Iterator[None]:
        """Our errors for a request's: no answer in time, too large, a NATS error."""
        try:
            yield
        except TimeoutError:
            raise NoAnswer(f"NATS did not answer within {wait:g}s ({_what(subject)}); servers tried: {self.servers}") from None
        except nats.errors.MaxPayloadError:
            raise EventTooLarge(len(payload), self.nc.max_payload) from None
        except nats.errors.Error as e:
            raise EventStoreUnavailable(f"NATS error ({e}); servers tried: {self.servers}") from None

    def check_reachable(self) -> None:
        """Fail at once while no server can be reached (see Health)."""
        if self.health.unreachable:
            raise Unreachable(f"NATS cannot be reached now (every server refused or timed out; reconnecting in the background); servers tried: {self.servers}")

    async def send_all(self, subject: str, messages: list[tuple[dict[str, str], bytes]]) -> None:
        """Publish messages without waiting for answers (an atomic batch before its commit), the first at once.

        nats-py writes only when its flusher task gets a turn of the loop: handing it one after the
        first message lets the server start on the batch (on a file stream, it creates a staging
        store on disk, about 2 ms) while the rest are published.
        """
        self.check_reachable()
        publish = self.nc.publish
        largest = max((payload for _, payload in messages), key=len, default=b"")  # the one a too-large error is about
        with self.errors(subject, self.timeout, largest):
            for n, (headers, payload) in enumerate(messages):
                await publish(subject, payload, headers=headers)
                if n == 0:
                    await asyncio.sleep(0)

    async def _roundtrip(self, subject: str, payload: bytes, headers: dict[str, str] | None, batch: bool, timeout: float | None) -> tuple[Msg, list[Msg]]:
        self.check_reachable()
        token = str(next(self.tokens))
        wait = self.timeout if timeout is None else timeout
        future: asyncio.Future[Msg] = self.loop.create_future()
        replies = _Batch(future) if batch else None
        if replies is not None:
            self.pending[token] = replies
            replies.time_out_when_idle(self.loop, wait)
        else:  # a single reply: no batch to keep, one timer for the whole wait
            self.pending[token] = future
            timer = self.loop.call_later(wait, _time_out, future)
        try:
            with self.errors(subject, wait, payload):
                await self.nc.publish(subject, payload, reply=self.prefix + token, headers=headers)
                msg = await future
        finally:
            if replies is None:
                timer.cancel()
            elif replies.timer is not None:  # the batch's timer of the moment (it re-arms while replies flow)
                replies.timer.cancel()
            del self.pending[token]
        return answered(subject, msg), replies.msgs if replies is not None else []

    async def request(self, subject: str, payload: bytes = b"", headers: dict[str, str] | None = None, timeout: float | None = None) -> Msg:
        """The reply (waiting at most timeout, default TIMEOUT); NoResponders when nothing received the request."""
        return (await self._roundtrip(subject, payload, headers, False, timeout))[0]

    async def request_batch(self, subject: str, payload: bytes, timeout: float | None = None) -> tuple[list[Msg], Msg]:
        """The replies of a batch direct get and its end-of-batch status message."""
        end, msgs = await self._roundtrip(subject, payload, None, True, timeout)
        return msgs, end

    async def request_many(self, requests: list[tuple[str, bytes, dict[str, str] | None]], timeout: float | None = None) -> list[Msg | EventStoreUnavailable]:
        """Send every request, then wait for all their replies within timeout (default TIMEOUT) in all: each reply, or NoAnswer."""
        self.check_reachable()
        wait = self.timeout if timeout is None else timeout
        tokens: list[str] = []
        futures: list[asyncio.Future[Msg]] = []
        timer = None
        try:
            for subject, payload, headers in requests:
                with self.errors(subject, wait, payload):
                    tokens.append(str(next(self.tokens)))
                    futures.append(self.loop.create_future())
                    self.pending[tokens[-1]] = futures[-1]
                    await self.nc.publish(subject, payload, reply=self.prefix + tokens[-1], headers=headers)
            timer = self.loop.call_later(wait, _time_out_all, futures)
            replies: list[Msg | EventStoreUnavailable] = []
            for (subject, _, _), future in zip(requests, futures):
                try:
                    with self.errors(subject, wait, b""):
                        replies.append(await future)
                except NoAnswer as e:
                    replies.append(e)
            return replies
        finally:
            if timer is not None:
                timer.cancel()
            for token, future in zip(tokens, futures):
                del self.pending[token]
                if future.done() and not future.cancelled():
                    future.exception()  # retrieved: timed-out futures we did not await log no warning

    async def api(self, subject: str, request: dict[str, Any] | None = None, timeout: float | None = None) -> dict[str, Any]:
        """A JetStream API request ($JS.API.<subject>) and its decoded JSON answer."""
        msg = await self.request(f"{API}.{subject}", json.dumps(request).encode() if request is not None else b"", timeout=timeout)
        return json.loads(msg.data)  # type: ignore[no-any-return]

    async def doorbell(self, subject_filter: str) -> Doorbell:
        """The doorbell of a subject filter, subscribed on first use for the connection's life."""
        bell = self.doorbells.get(subject_filter)
        if bell is None:
            bell = self.doorbells[subject_filter] = Doorbell()
            with self.errors(subject_filter, self.timeout, b""):
                await self.nc.subscribe(subject_filter, cb=bell.ring)
        return bell

    async def reading(self, timeout: float = 1.0) -> bool:
        """Whether our subscription still receives: a message sent to our own inbox comes back within timeout.

        nats-py's read loop stops, while the client still says it is connected
        (and its flush() no longer waits for a PONG), when a message it cannot
        parse arrives: e.g. an inline status with an invalid UTF-8 description,
        which any client allowed to publish to our inbox can send. While nats-py
        reconnects, we take it that it is reading: it is on it.
        """
        if not self.nc.is_connected:
            return True
        token = f"probe{next(self.tokens)}"
        future: asyncio.Future[Msg] = self.loop.create_future()
        self.pending[token] = future
        try:
            await self.nc.publish(self.prefix + token, b"")
            await asyncio.wait_for(future, timeout)
        except (TimeoutError, nats.errors.Error):
            return False
        finally:
            del self.pending[token]
        return True

    async def abort(self) -> None:
        """Close the client without draining (a client that no longer reads would wait for nothing); best effort."""
        try:
            await asyncio.wait_for(self.nc.close(), 2.0)
        except Exception as e:  # noqa: BLE001 - closing a broken connection is best effort
            log.debug("closing the NATS connection: %r", e)

    async def close(self) -> None:
        """Drain (or close) the client; best effort, never raises."""
        if self.nc.is_closed:
            return
        try:
            if self.nc.is_connected:
                await self.nc.drain()
            else:
                await self.nc.close()
        except Exception as e:  # noqa: BLE001 - closing a broken connection is best effort (nats-py can raise TypeError here)
            log.debug("closing the NATS connection: %r", e)


def _what(subject: str) -> str:
    """A request's subject as people read it (no raw $JS.API subjects in messages)."""
    if subject.startswith(f"{API}.DIRECT.GET."):
        return f"a read from stream {subject.split('.')[4]}"
    if subject.startswith(f"{API}."):
        return "a JetStream request"
    return f"a publish to {subject}"


async def connect(servers: list[str], timeout: float, servers_text: str, options: dict[str, Any], health: Health) -> Connection:
    """A started Connection; nats-py tries the servers in turn until one answers (bound it with a timeout).

    Failures on the way are kept in health.last_error for the caller's message.
    """
    nc = NATS()

    # Quiet while connecting (a failure raises EventStoreUnavailable) and on close;
    # then one warning per outage, not one per reconnect attempt.
    quiet = True

    async def on_error(e: Exception) -> None:
        nonlocal quiet
        health.failed(e)
        if nc.is_reconnecting:
            health.attempt_failed(len(nc.servers))
        log.log(logging.DEBUG if quiet else logging.WARNING, "NATS error: %s", redact_text(str(e)))
        quiet = True

    async def on_disconnect() -> None:
        health.disconnected()
        if not nc.is_closed and not nc.is_draining:
            log.warning("disconnected from NATS; reconnecting in the background")

    async def on_reconnect() -> None:
        nonlocal quiet
        quiet = False
        health.reconnected()
        u = nc.connected_url
        log.warning("reconnected to NATS at %s", f"{u.hostname}:{u.port}" if u else "?")

    settings: dict[str, Any] = {
        "servers": servers,
        "connect_timeout": min(timeout, 2.0),
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "error_cb": on_error,
        "disconnected_cb": on_disconnect,
        "reconnected_cb": on_reconnect,
        "name": "django-eventstore",
    }
    settings.update(options)
    try:
        await nc.connect(**settings)
        conn = Connection(nc, timeout, servers_text, health)  # after connect: it may set inbox_prefix
        await conn.start()
    except BaseException as e:  # cancelled (given up on) included: the client must not linger
        with contextlib.suppress(Exception):  # best effort: the connection never worked
            await nc.close()
        if isinstance(e, (OSError, nats.errors.Error)):
            raise EventStoreUnavailable(f"could not connect to NATS{reason(e)}; servers tried: {servers_text}") from None
        raise
    quiet = False
    return conn


def _is_authorization_violation(error: BaseException) -> bool:
    return isinstance(error, nats.errors.AuthorizationError) or "authorization violation" in str(error).lower()


def reason(error: BaseException | None) -> str:
    """What went wrong while connecting, as people read it (credentials never included)."""
    text = str(error or "")
    if error is not None and _is_authorization_violation(error):
        return " (authorization violation: the server refused the credentials)"
    return f" ({redact_text(text)})" if text else ""


def redact_text(text: str) -> str:
    """text with the credentials of any URL in it removed."""
    return _URL_WITH_CREDENTIALS.sub(r"\1\2", text)
