"""Stream primitives over JetStream: direct gets, batched direct gets, expected-sequence publishes, atomic batches.

Writes carry ``Nats-Expected-Last-Subject-Sequence`` so the server enforces
the version check; reads use direct gets (no consumers). Everything runs on
the store's event loop, over a ``Connection`` (connection.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from typing import Any, Awaitable, Callable, TypeVar

from nats.aio.msg import Msg

from .backend import EVENTS, KEYS, SNAPSHOTS, DuplicateBatch, PubAck, Publish, RawMsg, ServerSummary, StreamChange, StreamSummary, WrongLastSequence
from .connection import API, STATUS, Connection, Health, NoAnswer, NoResponders, Unreachable, answered, connect, redact
from .errors import EventStoreError, EventStoreUnavailable, EventTooLarge, StreamSetupError
from .subjects import Subjects, subject_matches

log = logging.getLogger("django_eventstore")
T = TypeVar("T")


ERR_WRONG_LAST_MSG_ID = 10070  # Nats-Expected-Last-Msg-Id did not hold (save_events' chain)
ERR_WRONG_LAST_SEQUENCE = 10071
ERR_CLUSTERED_WRONG_LAST_SEQUENCE = 10164  # a clustered stream's answer while another proposal for the subject is in flight
ERR_STREAM_NOT_FOUND = 10059
ERR_BATCH_DUPLICATE = 10201
ERR_MAX_PAYLOAD = 10054
ERR_NO_MESSAGE = 10057
ERR_JETSTREAM_OFF = 10076
ERR_JETSTREAM_OFF_FOR_ACCOUNT = 10039
ERR_BATCH_INCOMPLETE = 10176  # a server restart in the middle of an atomic batch: nothing stored, send it again
ATTEMPT_TIMEOUT = 1.0  # seconds a request may go unanswered before it is sent again (within TIMEOUT in all)
MAX_ATTEMPT_TIMEOUT = 4.0  # the wait doubles after each unanswered try, up to this (a failover still retries within seconds)
_MISSING = "missing"
_WILDCARD = re.compile(r"(^|\.)[*>](\.|$)")  # _stream_problem: the stream does not exist
# Every server answer that means "the expected sequence (or last message) did not hold": a conflict to settle.
_WRONG_LAST = (ERR_WRONG_LAST_SEQUENCE, ERR_WRONG_LAST_MSG_ID, ERR_CLUSTERED_WRONG_LAST_SEQUENCE)


def _api_error(resp: dict[str, Any]) -> tuple[int, str]:
    err = resp.get("error") or {}
    return int(err.get("err_code") or 0), str(err.get("description") or err)


def _raw(msg: Msg) -> RawMsg:
    headers = msg.headers or {}
    return RawMsg(headers.get("Nats-Subject", ""), int(headers.get("Nats-Sequence", 0)), headers, msg.data)


def _check_direct_status(msg: Msg, what: str) -> bool:
    """True when the direct get found a message; False on 404; error otherwise."""
    headers = msg.headers or {}
    status = headers.get(STATUS)
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
        key_bucket: str | None = None,
    ):
        self.servers = list(servers)
        self.servers_text = ", ".join(redact(s) for s in self.servers)
        self.subject_names = subjects
        self.stream_names = {EVENTS: stream, SNAPSHOTS: f"{stream}_SNAPSHOTS"}
        if key_bucket is not None:
            self.stream_names[KEYS] = f"KV_{key_bucket}"  # a key-value bucket: `nats kv` can read it
        self.key_bucket = key_bucket
        self.replicas = replicas
        self.snapshots_keep = snapshots_keep
        self.timeout = timeout
        self.auto_setup = auto_setup
        self.connect_options = dict(connect_options or {})
        self._conn: Connection | None = None
        self._connecting: asyncio.Lock | None = None
        self._dialing: asyncio.Future[Connection] | None = None  # a connect going on in the background
        self._health = Health()
        self._set_up = False  # streams created or checked on this connection
        self.max_payload = 1024 * 1024

    # ----- connection -----

    async def _connection(self, auto_setup: bool = True) -> Connection:
        """The open connection, connecting (and, with AUTO_SETUP, setting up the streams once) if needed.

        The first call waits up to TIMEOUT for a server; if none answered, the
        connection goes on being tried in the background and calls fail at
        once (Unreachable) until it succeeds.
        """
        conn = self._conn
        if conn is not None and not conn.nc.is_closed and (self._set_up or not (auto_setup and self.auto_setup)):
            return conn
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._conn is None or self._conn.nc.is_closed:
                self._set_up = False
                self._conn = await self._dial()
                self.max_payload = self._conn.max_payload
            if auto_setup and self.auto_setup and not self._set_up:
                await self._setup(self._conn, dry_run=False)
            return self._conn

    async def _dial(self) -> Connection:
        dialing = self._dialing
        if dialing is not None and not dialing.done():  # a first call already waited TIMEOUT for it
            raise Unreachable(f"could not connect to NATS{self._health.reason()}; still trying in the background; servers tried: {self.servers_text}")
        self._health = Health()
        dialing = self._dialing = asyncio.ensure_future(connect(self.servers, self.timeout, self.servers_text, self.connect_options, self._health))
        try:
            return await asyncio.wait_for(asyncio.shield(dialing), self.timeout)
        except TimeoutError:
            raise EventStoreUnavailable(
                f"could not connect to NATS within {self.timeout:g}s{self._health.reason()}; servers tried: {self.servers_text}"
            ) from None

    async def _drop(self, conn: Connection) -> None:
        """Give up a connection that no longer reads: the next call opens another."""
        log.warning("the NATS connection stopped reading (nats-py could not parse a message?); opening another")
        if self._conn is conn:
            self._conn = None
        await conn.abort()

    def forget(self) -> None:
        self._conn = None
        self._connecting = None
        self._dialing = None

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        self._connecting = None
        dialing, self._dialing = self._dialing, None
        if dialing is not None and not dialing.done():
            dialing.cancel()
        if conn is not None:
            await conn.close()

    # ----- reads -----

    def _direct(self, stream: str) -> str:
        return f"{API}.DIRECT.GET.{self.stream_names[stream]}"

    async def _answer(
        self,
        conn: Connection,
        stream: str,
        ask: Callable[[float], Awaitable[T]],
        *,
        subject: str | None = None,
        direct: bool = False,
        probe: bool = True,
        attempt: float = ATTEMPT_TIMEOUT,
    ) -> T:
        """ask(timeout)'s answer, sending the request again while it goes unanswered, until TIMEOUT in all.

        Every request the store makes is safe to send again: reads, and writes
        that carry their event id and expected sequence (a re-sent write that
        was stored the first time is refused, and the engine finds it stored).
        So a request unanswered within ``attempt`` seconds (its server died, the
        answer was lost) goes out again, each time allowed twice as long (a
        server that is only slow, e.g. a batch read of thousands of messages
        under load, is not sent the same work every second), and so does one that "no responders"
        says nobody received (a server restarting, a leader election). With
        probe, one look at the stream tells a setup problem, which fails at
        once (a missing stream is created again under AUTO_SETUP).
        """
        started = time.monotonic()
        deadline = started + self.timeout
        pause = 0.05
        while True:
            remaining = deadline - time.monotonic()
            try:
                return await ask(max(min(attempt, remaining), 0.001))
            except NoAnswer:
                if not await conn.reading():
                    await self._drop(conn)
                    raise EventStoreUnavailable(
                        "the NATS connection stopped reading (nats-py could not parse a message sent to it) and is being opened again; "
                        f"try again. servers: {self.servers_text}"
                    ) from None
                if deadline - time.monotonic() <= 0.001:
                    raise EventStoreUnavailable(f"NATS did not answer within {self.timeout:g}s (stream {self.stream_names[stream]}); servers tried: {self.servers_text}") from None
                attempt = max(attempt, min(attempt * 2, MAX_ATTEMPT_TIMEOUT))
                continue
            except NoResponders:
                pass
            if probe:
                probe = False
                problem = await self._stream_problem(conn, stream, subject, direct, max(deadline - time.monotonic(), 0.001))
                if problem == _MISSING and self.auto_setup:
                    self._set_up = False
                    await self._connection()  # sets the streams up again
                    continue
                if isinstance(problem, EventStoreError):
                    raise problem
            if deadline - time.monotonic() < pause + 0.05:
                raise EventStoreUnavailable(
                    f"JetStream did not answer for {time.monotonic() - started:.1f}s (stream {self.stream_names[stream]}): "
                    f"is JetStream enabled? servers tried: {self.servers_text}"
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)

    async def _stream_problem(self, conn: Connection, stream: str, subject: str | None, direct: bool, timeout: float) -> EventStoreError | str | None:
        """What keeps the stream from answering, when JetStream can say; None when JetStream does not answer at all.

        _MISSING when the stream does not exist.
        """
        name = self.stream_names[stream]
        try:
            info = await conn.api(f"STREAM.INFO.{name}", timeout=min(timeout, ATTEMPT_TIMEOUT))
        except (NoResponders, NoAnswer):  # a leaderless stream (an election) answers nothing: wait
            return None
        if "error" in info:
            code = _api_error(info)[0]
            if code == ERR_STREAM_NOT_FOUND:
                return _MISSING if self.auto_setup else StreamSetupError(name, f"stream {name} does not exist")
            if code in (ERR_JETSTREAM_OFF, ERR_JETSTREAM_OFF_FOR_ACCOUNT):
                return self._stream_error(name, info)
            return None  # e.g. "temporarily unavailable": wait
        config = info.get("config") or {}
        filters = config.get("subjects") or []
        if subject is not None and not any(subject_matches(f, subject) for f in filters):
            return StreamSetupError(name, f"stream {name} does not take subject {subject} (it takes {', '.join(filters) or 'none'})")
        if direct and not config.get("allow_direct"):
            return StreamSetupError(name, f"stream {name} does not allow direct gets, which the store reads with")
        return None

    async def _api(self, conn: Connection, subject: str, request: dict[str, Any] | None = None) -> dict[str, Any]:
        """A JetStream API call, sent again while JetStream does not listen (see _answer)."""
        # JetStream API calls (stream info of 100,000 subjects...) may take long: one attempt of TIMEOUT
        return await self._answer(conn, EVENTS, lambda timeout: conn.api(subject, request, timeout), probe=False, attempt=self.timeout)

    async def last_msg(self, stream: str, subject: str) -> RawMsg | None:
        conn = await self._connection()
        if _WILDCARD.search(subject):  # the last message of any subject the filter matches
            payload = json.dumps({"last_by_subj": subject}).encode()
            msg = await self._answer(conn, stream, lambda timeout: conn.request(self._direct(stream), payload, timeout=timeout), direct=True)
        else:
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
        status = headers.get(STATUS)
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
                raise self._stream_error(self.stream_names[stream], resp)
            page = (resp.get("state") or {}).get("subjects") or {}
            out.update(page)
            offset += len(page)
            if not page or offset >= int(resp.get("total", 0)):
                return out

    async def wait_for_messages(self, stream: str, subject_filter: str, after_seq: int, timeout: float) -> bool:
        conn = await self._connection()
        bell = await conn.doorbell(subject_filter)
        waiter: asyncio.Future[None] = conn.loop.create_future()
        bell.waiters.add(waiter)
        try:
            msgs, _ = await self.next_msgs(stream, subject_filter, after_seq + 1, 1)  # stored before the bell listened?
            if msgs:
                return True
            try:
                await asyncio.wait_for(waiter, timeout)
            except TimeoutError:
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
        if code in _WRONG_LAST:
            tail = text.rsplit(":", 1)[-1].strip()
            raise WrongLastSequence(int(tail) if code == ERR_WRONG_LAST_SEQUENCE and tail.isdigit() else None)
        if code == ERR_BATCH_DUPLICATE:
            raise DuplicateBatch(text)
        if code == ERR_MAX_PAYLOAD:
            raise EventTooLarge(0, self.max_payload)
        if "atomic" in text.lower():
            name = self.stream_names[EVENTS]
            raise StreamSetupError(name, f"multi-event append needs atomic batch publish (nats-server 2.12+ and allow_atomic on stream {name}): {text}")
        raise EventStoreError(f"publish to {subject} refused by the server: {text} (error {code})")

    async def publish_batch(self, subject: str, messages: list[tuple[dict[str, str], bytes]], expected_last_seq: int) -> int:
        conn = await self._connection()
        if not self._supports_atomic(conn):
            raise EventStoreError(
                f"a multi-event append needs atomic batch publish, which nats-server {'.'.join(map(str, conn.server_version()[:2]))} "
                "does not have (2.12+); nothing was stored"
            )
        # Each try is a new batch: a batch whose commit went unanswered, or that a restarting server
        # dropped, is sent again whole; if the first was stored after all, its event ids refuse the second.
        return await self._answer(conn, EVENTS, lambda timeout: self._send_batch(conn, subject, messages, expected_last_seq, timeout), subject=subject)

    async def _send_batch(self, conn: Connection, subject: str, messages: list[tuple[dict[str, str], bytes]], expected_last_seq: int, timeout: float) -> int:
        if not messages:
            raise AssertionError("empty batch")
        batch_id = uuid.uuid4().hex
        batch = [({**headers, "Nats-Batch-Id": batch_id, "Nats-Batch-Sequence": str(n)}, body) for n, (headers, body) in enumerate(messages, start=1)]
        batch[0][0]["Nats-Expected-Last-Subject-Sequence"] = str(expected_last_seq)
        commit_headers, commit_body = batch.pop()
        commit_headers["Nats-Batch-Commit"] = "1"
        await conn.send_all(subject, batch)
        resp = json.loads((await conn.request(subject, commit_body, commit_headers, timeout)).data)
        if "error" in resp:
            if _api_error(resp)[0] == ERR_BATCH_INCOMPLETE:
                raise NoAnswer("the server dropped the batch (restarting?): nothing was stored")
            self._raise_publish_error(resp, subject)
        return int(resp["seq"])

    async def erase_msg(self, stream: str, seq: int) -> bool:
        conn = await self._connection()
        resp = await self._api(conn, f"STREAM.MSG.DELETE.{self.stream_names[stream]}", {"seq": seq})  # no_erase unset: overwritten
        if "error" in resp:
            if _api_error(resp)[0] == ERR_NO_MESSAGE:
                return False
            raise EventStoreError(f"could not delete message {seq} of stream {self.stream_names[stream]}: {_api_error(resp)[1]}")
        return True

    async def purge_subject(self, stream: str, subject: str) -> int:
        conn = await self._connection()
        resp = await self._api(conn, f"STREAM.PURGE.{self.stream_names[stream]}", {"filter": subject})
        self._check_api(resp, f"purge {subject} from stream {self.stream_names[stream]}")
        return int(resp.get("purged", 0))

    async def last_seq(self, stream: str) -> int:
        conn = await self._connection()
        info = await self._api(conn, f"STREAM.INFO.{self.stream_names[stream]}")
        if "error" in info:
            if _api_error(info)[0] == ERR_STREAM_NOT_FOUND:
                return 0  # the publishes will tell (and AUTO_SETUP create it again)
            raise self._stream_error(self.stream_names[stream], info)
        return int((info.get("state") or {}).get("last_seq", 0))

    async def publish_pipelined(self, stream: str, messages: list[Publish], expected_last_seq: int) -> list[PubAck | EventStoreError]:
        conn = await self._connection()
        requests: list[tuple[str, bytes, dict[str, str] | None]] = []
        for i, message in enumerate(messages):
            expect = {"Nats-Expected-Last-Sequence": str(expected_last_seq + i), "Nats-Expected-Last-Subject-Sequence": str(message.expected_last_subject_seq)}
            if i:  # chained: a message after a refused one is refused too, whatever else lands meanwhile
                expect["Nats-Expected-Last-Msg-Id"] = messages[i - 1].headers["Nats-Msg-Id"]
            requests.append((message.subject, message.body, {**message.headers, **expect}))
        results: list[PubAck | EventStoreError] = []
        for (subject, _, _), msg in zip(requests, await conn.request_many(requests)):
            try:
                if isinstance(msg, EventStoreError):  # unanswered: the engine sends it again alone
                    raise msg
                resp = json.loads(answered(subject, msg).data)
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
        desired = {EVENTS: events, SNAPSHOTS: snapshots}
        if self.key_bucket is not None:  # the shape of a NATS key-value bucket keeping one revision, deletes allowed (to erase keys)
            desired[KEYS] = {
                **common,
                "name": self.stream_names[KEYS],
                "subjects": [f"$KV.{self.key_bucket}.>"],
                "max_msgs_per_subject": 1,
                "allow_rollup_hdrs": True,
                "discard": "new",
                "deny_delete": False,
            }
        return desired

    @staticmethod
    def _supports_atomic(conn: Connection) -> bool:
        return conn.server_version()[:2] >= (2, 12)

    async def setup(self, dry_run: bool = False) -> list[StreamChange]:
        return await self._setup(await self._connection(auto_setup=False), dry_run)

    async def _setup(self, conn: Connection, dry_run: bool) -> list[StreamChange]:
        changes = []
        for config in self._desired(self._supports_atomic(conn)).values():
            name = config["name"]
            info = await self._api(conn, f"STREAM.INFO.{name}")
            if "error" in info:
                if _api_error(info)[0] != ERR_STREAM_NOT_FOUND:
                    raise self._stream_error(name, info)
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
    def _stream_error(name: str, resp: dict[str, Any]) -> EventStoreError:
        """The error for a stream info request that failed: StreamSetupError when the stream does not exist or JetStream is off."""
        code, text = _api_error(resp)
        if code == ERR_STREAM_NOT_FOUND:
            return StreamSetupError(name, f"stream {name} does not exist")
        if code in (ERR_JETSTREAM_OFF, ERR_JETSTREAM_OFF_FOR_ACCOUNT):
            return StreamSetupError(name, f"{text}: the store needs JetStream (nats-server -js, or JetStream enabled for the account)")
        return EventStoreError(f"cannot read stream {name}: {text}")

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
                raise self._stream_error(name, info)
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
        major, minor, patch, dev = conn.server_version()
        version = f"{major}.{minor}.{patch}" + (f"-{dev}" if dev else "")
        return ServerSummary(url=conn.url, version=version, streams=streams, account=account)
