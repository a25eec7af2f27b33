"""Actor id <-> subject token encoding, and actor types.

Ids are encoded reversibly: ``[A-Za-z0-9_-]`` kept, every other UTF-8 byte
written ``~XX``, so ``.``, ``*``, ``>``, spaces and non-ASCII never reach a
subject and two ids never share one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .errors import InvalidActorId
from .limits import MAX_ACTOR_ID_BYTES

_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_ENCODE_TABLE = [chr(b) if b in _SAFE else f"~{b:02X}" for b in range(256)]
_SAFE_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_TOKEN = re.compile(r"(?:[A-Za-z0-9_-]|~[0-9A-F]{2})+")
NO_TYPE = "_"


def validate_actor_id(actor_id: object) -> str:
    """Return the id if it can be stored, else raise InvalidActorId naming the problem."""
    if not isinstance(actor_id, str):
        raise InvalidActorId(f"actor id must be a string, not {type(actor_id).__name__}")
    if not actor_id:
        raise InvalidActorId("actor id must not be empty")
    try:
        size = len(actor_id.encode("utf-8"))
    except UnicodeEncodeError as e:
        raise InvalidActorId(f"actor id {actor_id!r} is not valid unicode: {e}") from None
    if size > MAX_ACTOR_ID_BYTES:
        raise InvalidActorId(f"actor id is {size} bytes in UTF-8, more than the {MAX_ACTOR_ID_BYTES} allowed")
    return actor_id


def encode_token(text: str) -> str:
    """Encode any string as one subject token."""
    if _SAFE_TOKEN.fullmatch(text):
        return text
    return "".join([_ENCODE_TABLE[b] for b in text.encode("utf-8")])


def decode_token(token: str) -> str:
    """Invert encode_token; ValueError for a token it cannot have produced."""
    if "~" not in token:
        if not _SAFE_TOKEN.fullmatch(token):
            raise ValueError(f"not an encoded token: {token!r}")
        return token
    if not _TOKEN.fullmatch(token):
        raise ValueError(f"not an encoded token: {token!r}")
    out = bytearray()
    i = 0
    while i < len(token):
        if token[i] == "~":
            out.append(int(token[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(ord(token[i]))
            i += 1
    return out.decode("utf-8")


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcard matching: ``*`` one token, ``>`` one or more trailing tokens."""
    p, s = pattern.split("."), subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(s) > i
        if i >= len(s) or (token != "*" and token != s[i]):
            return False
    return len(p) == len(s)


@lru_cache(maxsize=32)
def _plain_subject(prefix: str) -> re.Pattern[str]:
    """Subjects whose type and id tokens need no decoding."""
    return re.compile(re.escape(prefix) + r"\.(?:events|snapshots)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")


def actor_type(actor_id: str) -> str:
    """The part before the first '-' (``order-42`` -> ``order``); ``_`` when there is none."""
    head, sep, _ = actor_id.partition("-")
    return head if sep and head else NO_TYPE


@dataclass(frozen=True)
class Subjects:
    """The subjects of one store: ``<prefix>.events.<type>.<id>`` and ``<prefix>.snapshots.<type>.<id>``."""

    prefix: str = "es"

    @property
    def events_root(self) -> str:
        return f"{self.prefix}.events"

    @property
    def snapshots_root(self) -> str:
        return f"{self.prefix}.snapshots"

    def events_filter(self, actor_type_name: str | None = None) -> str:
        """Wildcard subject of all actors' events, or of one type's."""
        if actor_type_name is None:
            return f"{self.events_root}.>"
        return f"{self.events_root}.{encode_token(actor_type_name)}.*"

    def snapshots_filter(self, actor_type_name: str | None = None) -> str:
        if actor_type_name is None:
            return f"{self.snapshots_root}.>"
        return f"{self.snapshots_root}.{encode_token(actor_type_name)}.*"

    def _actor_tail(self, actor_id: str) -> str:
        validate_actor_id(actor_id)
        return f"{encode_token(actor_type(actor_id))}.{encode_token(actor_id)}"

    def event_subject(self, actor_id: str) -> str:
        return f"{self.events_root}.{self._actor_tail(actor_id)}"

    def snapshot_subject(self, actor_id: str) -> str:
        return f"{self.snapshots_root}.{self._actor_tail(actor_id)}"

    def actor_id_of(self, subject: str) -> str:
        """The actor id of an event or snapshot subject; ValueError if it is not one of ours."""
        plain = _plain_subject(self.prefix).fullmatch(subject)
        if plain:  # the common case, without decoding: half the cost of listing 100,000 actors
            type_token, actor_id = plain.groups()
            if actor_type(actor_id) == type_token and len(actor_id) <= MAX_ACTOR_ID_BYTES:
                return actor_id
        parts = subject.split(".")
        root = self.prefix.split(".")
        if len(parts) != len(root) + 3 or parts[: len(root)] != root or parts[len(root)] not in ("events", "snapshots"):
            raise ValueError(f"not an actor subject: {subject!r}")
        actor_id = decode_token(parts[-1])
        validate_actor_id(actor_id)  # InvalidActorId is a ValueError: such subjects are not ours
        if encode_token(actor_type(actor_id)) != parts[-2]:
            raise ValueError(f"subject {subject!r} has the wrong type token for actor {actor_id!r}")
        return actor_id
