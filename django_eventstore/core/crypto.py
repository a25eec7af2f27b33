"""Per-actor encryption for crypto-shredding: each actor's data sealed with its own key, kept in a key-value bucket.

A data key is 32 random bytes (AES-256-GCM), stored wrapped by the master key
(Fernet, from the settings) in a JetStream key-value bucket, one key per
actor. Forgetting an actor erases its key and leaves a purge marker: its
sealed data can never be opened again. Keys read from the bucket are cached
for ``cache_seconds``, so a process that read a key before another process
forgot the actor stops reading the data at the latest that long after.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .backend import KEYS, Backend, RawMsg, WrongLastSequence
from .errors import EncryptionError
from .events import Sealed, loads_json
from .subjects import encode_token

NONCE = 12
TAG = 16
CACHE_ENTRIES = 100_000
KV_OPERATION = "KV-Operation"
_BUCKET = re.compile(r"[A-Za-z0-9_-]{1,100}")
PURGE_HEADERS = {KV_OPERATION: "PURGE", "Nats-Rollup": "sub"}  # a key-value purge: the key's history gone, a marker left


def master_keys(value: Any) -> list[Fernet]:
    """The Fernet keys of ``ENCRYPTION["MASTER_KEY"]`` (one key, or a list newest first); EncryptionError naming what is wrong, never the key."""
    keys = value if isinstance(value, (list, tuple)) else [value]
    if not keys:
        raise EncryptionError('ENCRYPTION["MASTER_KEY"] is an empty list: give at least one key')
    fernets = []
    for i, key in enumerate(keys, start=1):
        where = "MASTER_KEY" if len(keys) == 1 else f"key {i} of MASTER_KEY"
        if not isinstance(key, (str, bytes)):
            raise EncryptionError(f"{where} must be a string (a Fernet key: 32 random bytes in URL-safe base64), got {type(key).__name__}")
        try:
            fernets.append(Fernet(key))
        except ValueError:
            raise EncryptionError(
                f"{where} is not a Fernet key (32 random bytes in URL-safe base64, 44 characters; it has {len(key)}): "
                'make one with python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
            ) from None
    return fernets


@dataclass(frozen=True, slots=True)
class DataKey:
    id: str
    aead: AESGCM


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """What the bucket says of one actor: its key, or that it was forgotten, or nothing (key None, forgotten False)."""

    key: DataKey | None
    forgotten: bool
    seq: int  # the key subject's last sequence: the expectation of the next write to it
    read_at: float


def _box(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii")


def event_aad(actor_id: str, event_id: str) -> bytes:
    """What a sealed event's data is bound to: it opens only as that actor's event with that id."""
    return f"event:{len(actor_id)}:{actor_id}:{event_id}".encode()


def snapshot_aad(actor_id: str, version: int) -> bytes:
    return f"snapshot:{len(actor_id)}:{actor_id}:{version}".encode()


def sealed_size(plain_size: int) -> int:
    """The length of a Sealed box's text for data of ``plain_size`` JSON bytes."""
    return 4 * ((NONCE + plain_size + TAG + 2) // 3)


class Keyring:
    """The data keys of one bucket, through the store's backend, with a time-limited cache."""

    def __init__(self, backend: Backend, bucket: str, master: list[Fernet], cache_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.backend = backend
        self.bucket = bucket
        self.master = MultiFernet(master)
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._cache: OrderedDict[str, KeyEntry] = OrderedDict()

    def subject(self, actor_id: str) -> str:
        """The actor's key subject; '~' of the subject encoding becomes '=' so it is a valid key-value key."""
        return f"$KV.{self.bucket}.{encode_token(actor_id).replace('~', '=')}"

    def forget_cache(self) -> None:
        self._cache.clear()

    # ----- reading keys -----

    async def entries(self, actor_ids: list[str], fresh: bool = False) -> dict[str, KeyEntry]:
        """Each actor's entry: from the cache while younger than cache_seconds (unless fresh), else one batched read."""
        now = self.clock()
        out: dict[str, KeyEntry] = {}
        missing: dict[str, str] = {}
        for actor_id in actor_ids:
            entry = None if fresh else self._cache.get(actor_id)
            if entry is not None and now - entry.read_at < self.cache_seconds:
                out[actor_id] = entry
            else:
                missing[self.subject(actor_id)] = actor_id
        if missing:
            msgs = await self.backend.last_msgs(KEYS, list(missing))
            for subject, actor_id in missing.items():
                out[actor_id] = self._remember(actor_id, self._entry(actor_id, msgs.get(subject), now))
        return out

    async def entries_for(self, wanted: dict[str, str]) -> dict[str, KeyEntry]:
        """The entries to open data sealed with the given key ids (actor -> key id): cached, but read again where
        the cache has no key or another one (it may predate a new key, or a forget)."""
        entries = await self.entries(list(wanted))
        unsure = [a for a, key_id in wanted.items() if entries[a].key is None or entries[a].key.id != key_id]  # type: ignore[union-attr]
        if unsure:
            entries.update(await self.entries(unsure, fresh=True))
        return entries

    def _entry(self, actor_id: str, msg: RawMsg | None, now: float) -> KeyEntry:
        if msg is None:
            return KeyEntry(None, False, 0, now)
        if (msg.headers or {}).get(KV_OPERATION) in ("PURGE", "DEL"):
            return KeyEntry(None, True, msg.seq, now)
        try:
            doc = json.loads(msg.data)
            key_id, wrapped = doc["id"], doc["key"]
        except (ValueError, KeyError, TypeError):
            raise EncryptionError(f"the data key of actor {actor_id!r} in bucket {self.bucket} is not a key record (written by something else?)") from None
        try:
            raw = self.master.decrypt(wrapped.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError, AttributeError):
            raise EncryptionError(
                f"the data key of actor {actor_id!r} (bucket {self.bucket}) cannot be unwrapped with any configured MASTER_KEY: "
                "a wrong master key, or one removed before eventstore_rotate_master_key re-wrapped the keys"
            ) from None
        return KeyEntry(DataKey(key_id, AESGCM(raw)), False, msg.seq, now)

    def _remember(self, actor_id: str, entry: KeyEntry) -> KeyEntry:
        self._cache[actor_id] = entry
        self._cache.move_to_end(actor_id)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return entry

    # ----- keys for writing -----

    async def keys_for_write(self, actor_ids: list[str]) -> dict[str, DataKey]:
        """Each actor's data key, created (concurrently) for the actors without one."""
        entries = await self.entries(actor_ids)
        keys = {a: e.key for a, e in entries.items() if e.key is not None}
        todo = [a for a in entries if a not in keys]
        if getattr(self.backend, "never_suspends", False):  # the memory store runs without an event loop
            for actor_id in todo:
                keys[actor_id] = await self._create(actor_id, entries[actor_id])
            return keys
        for start in range(0, len(todo), 256):
            chunk = todo[start : start + 256]
            created = await asyncio.gather(*(self._create(a, entries[a]) for a in chunk))
            keys.update(zip(chunk, created))
        return keys

    async def _create(self, actor_id: str, entry: KeyEntry) -> DataKey:
        """A new key for the actor, unless another writer stored one first (then theirs)."""
        for _ in range(5):
            raw = AESGCM.generate_key(bit_length=256)
            key = DataKey(secrets.token_hex(8), AESGCM(raw))
            body = json.dumps({"id": key.id, "key": self.master.encrypt(raw).decode("ascii")}).encode()
            try:
                ack = await self.backend.publish(KEYS, self.subject(actor_id), {}, body, entry.seq)
            except WrongLastSequence:
                entry = (await self.entries([actor_id], fresh=True))[actor_id]
                if entry.key is not None:
                    return entry.key
                continue
            self._remember(actor_id, KeyEntry(key, False, ack.seq, self.clock()))
            return key
        raise EncryptionError(f"could not store a data key for actor {actor_id!r}: the bucket kept changing")

    # ----- sealing and opening -----

    @staticmethod
    def seal(key: DataKey | None, plain: bytes, aad: bytes) -> Sealed:
        """The plain bytes sealed with the key; without a key (a size check, no I/O), a stand-in of the sealed size."""
        if key is None:
            return Sealed("0" * 16, "A" * sealed_size(len(plain)))
        nonce = os.urandom(NONCE)
        return Sealed(key.id, _box(nonce + key.aead.encrypt(nonce, plain, aad)))

    @staticmethod
    def open(key: DataKey, sealed: Sealed, aad: bytes, what: str) -> Any:
        """The JSON value sealed in the box; EncryptionError when it does not open (altered, or moved from another event)."""
        try:
            raw = base64.urlsafe_b64decode(sealed.box)
            plain = key.aead.decrypt(raw[:NONCE], raw[NONCE:], aad)
        except (InvalidTag, ValueError):
            raise EncryptionError(f"the sealed data of {what} does not open with its key: the message was altered") from None
        return loads_json(plain)

    # ----- forgetting and rotating -----

    async def destroy(self, actor_id: str) -> bool:
        """Erase the actor's key (its bytes overwritten on disk) and leave a purge marker; False when it had none."""
        for _ in range(5):
            entry = (await self.entries([actor_id], fresh=True))[actor_id]
            if entry.forgotten:
                return False
            if entry.key is not None:
                await self.backend.erase_msg(KEYS, entry.seq)
            try:
                ack = await self.backend.publish(KEYS, self.subject(actor_id), dict(PURGE_HEADERS), b"", 0)
            except WrongLastSequence:
                continue  # a key written meanwhile: erase that one too
            self._remember(actor_id, KeyEntry(None, True, ack.seq, self.clock()))
            return entry.key is not None
        raise EncryptionError(f"could not erase the data key of actor {actor_id!r}: keys kept being written for it")

    async def rotate(self) -> int:
        """Re-wrap every data key with the first master key; how many were re-wrapped. The events are not touched."""
        subjects = list(await self.backend.subjects(KEYS, f"$KV.{self.bucket}.>"))
        rotated = 0
        for start in range(0, len(subjects), 1000):
            msgs = await self.backend.last_msgs(KEYS, subjects[start : start + 1000])
            for subject, msg in msgs.items():
                rotated += await self._rewrap(subject, msg)
        self.forget_cache()
        return rotated

    async def _rewrap(self, subject: str, msg: RawMsg) -> int:
        if (msg.headers or {}).get(KV_OPERATION):
            return 0
        try:
            doc = json.loads(msg.data)
            doc["key"] = self.master.rotate(doc["key"].encode("ascii")).decode("ascii")
        except (InvalidToken, ValueError, KeyError, TypeError, AttributeError):
            raise EncryptionError(f"the data key at {subject} cannot be unwrapped with any configured MASTER_KEY: nothing after it was re-wrapped") from None
        try:
            await self.backend.publish(KEYS, subject, {}, json.dumps(doc).encode(), msg.seq)
        except WrongLastSequence:
            return 0  # forgotten or replaced meanwhile: a new key is wrapped with the first master key already
        return 1


ENCRYPTION_KEYS = ("MASTER_KEY", "KEY_BUCKET", "KEY_CACHE_SECONDS")


def encryption_options(value: dict[str, Any] | None, stream: str) -> dict[str, Any] | None:
    """``EVENTSTORE["ENCRYPTION"]`` checked and completed (bucket ``<STREAM>_KEYS``, cache 60 s); None when encryption is off."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise EncryptionError(f'ENCRYPTION must be a dict with "MASTER_KEY" (and optionally "KEY_BUCKET", "KEY_CACHE_SECONDS"), got {type(value).__name__}')
    unknown = sorted(set(value) - set(ENCRYPTION_KEYS))
    if unknown:
        raise EncryptionError(f"unknown ENCRYPTION key {', '.join(map(repr, unknown))}: expected {', '.join(ENCRYPTION_KEYS)}")
    if "MASTER_KEY" not in value:
        raise EncryptionError('ENCRYPTION has no "MASTER_KEY"')
    master_keys(value["MASTER_KEY"])
    bucket = value.get("KEY_BUCKET") or f"{stream}_KEYS"
    if not isinstance(bucket, str) or not _BUCKET.fullmatch(bucket):
        raise EncryptionError(f"ENCRYPTION KEY_BUCKET must be letters, digits, '-' and '_', got {bucket!r}")
    seconds = value.get("KEY_CACHE_SECONDS", 60.0)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise EncryptionError(f"ENCRYPTION KEY_CACHE_SECONDS must be a number of seconds >= 0, got {seconds!r}")
    return {"MASTER_KEY": value["MASTER_KEY"], "KEY_BUCKET": bucket, "KEY_CACHE_SECONDS": float(seconds)}


def keyring_for(backend: Backend, options: dict[str, Any] | None) -> Keyring | None:
    """The keyring of checked encryption options (encryption_options), None when encryption is off."""
    if options is None:
        return None
    return Keyring(backend, options["KEY_BUCKET"], master_keys(options["MASTER_KEY"]), options["KEY_CACHE_SECONDS"])
