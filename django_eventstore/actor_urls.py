"""Actor ids in URLs, the same in the admin and the REST API: one path segment in the subjects' encoding.

``[A-Za-z0-9_-]`` are kept and every other UTF-8 byte is written ``~XX``
(upper-case hex): ``order-42`` stays ``order-42``, ``a/b`` is ``a~2Fb``, ``..``
is ``~2E~2E`` and ``é`` is ``~C3~A9``. A segment holds nothing that servers
decode before routing (``%2F``) or that browsers and HTTP clients rewrite (dot
segments), so every id reaches its page on every server, and each id has
exactly one segment.
"""

from __future__ import annotations

from .core.errors import InvalidActorId
from .core.subjects import decode_token, encode_token, validate_actor_id

ENCODING = "[A-Za-z0-9_-] kept, every other UTF-8 byte written ~XX in upper-case hex (a/b as a~2Fb)"


def actor_segment(actor_id: str) -> str:
    """The URL path segment of an actor id."""
    return encode_token(actor_id)


def actor_id_from_segment(segment: str) -> str:
    """The actor id of a URL path segment; InvalidActorId for a segment that actor_segment cannot have produced."""
    try:
        actor_id = decode_token(segment)
    except ValueError:  # UnicodeDecodeError included
        actor_id = None
    if actor_id is None or encode_token(actor_id) != segment:
        raise InvalidActorId(f"{segment!r} is not an actor id as URLs carry it: {ENCODING}")
    return validate_actor_id(actor_id)
