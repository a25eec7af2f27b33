"""Upcasters: functions that turn an event's stored data of an old schema into the next schema's.

An event carries the schema of its data (1 when it never said). Reads return
every event upcast to the newest schema its type has an upcaster chain to;
writes state the newest by default. Plain Python: the Django app discovers
``upcasters.py`` modules and registers into :data:`registry`.
"""

from __future__ import annotations

from typing import Any, Callable

from .events import Event, Malformed, evolve

UpcastFunction = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]


def _name(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


class Upcasters:
    """A registry of upcasters by event type and the schema they read."""

    def __init__(self) -> None:
        self._chains: dict[str, dict[int, UpcastFunction]] = {}

    def __bool__(self) -> bool:
        return bool(self._chains)

    def register(self, event_type: str, from_schema: int, fn: UpcastFunction) -> None:
        """Register ``fn(data, metadata) -> data`` turning ``event_type`` data of ``from_schema`` into ``from_schema + 1``."""
        if not isinstance(event_type, str) or not event_type:
            raise ValueError(f"an upcaster's event type must be a non-empty string, got {event_type!r}")
        if type(from_schema) is not int or from_schema < 1:
            raise ValueError(f"from_schema must be an int >= 1, got {from_schema!r} (upcaster {_name(fn)})")
        if not callable(fn):
            raise ValueError(f"an upcaster must be callable, got {fn!r}")
        chain = self._chains.setdefault(event_type, {})
        other = chain.get(from_schema)
        if other is not None and other is not fn:
            raise ValueError(f"two upcasters for {event_type!r} from schema {from_schema}: {_name(other)} and {_name(fn)}")
        chain[from_schema] = fn

    def unregister(self, event_type: str, from_schema: int) -> None:
        """Remove one upcaster (tests register and remove theirs)."""
        chain = self._chains.get(event_type, {})
        chain.pop(from_schema, None)
        if not chain:
            self._chains.pop(event_type, None)

    def newest(self, event_type: str) -> int:
        """The schema reads return for this type: one above its highest upcaster, 1 without any."""
        chain = self._chains.get(event_type)
        return max(chain) + 1 if chain else 1

    def gaps(self) -> list[str]:
        """Chains with a missing step (e.g. 1 -> 2 and 3 -> 4 but no 2 -> 3), described for a system check."""
        problems = []
        for event_type, chain in sorted(self._chains.items()):
            missing = [s for s in range(1, max(chain) + 1) if s not in chain]
            if missing:
                problems.append(f"{event_type!r} has no upcaster from schema {', '.join(map(str, missing))} (it has {sorted(chain)})")
        return problems

    def upcast(self, event: Event) -> Event:
        """The event with its data upcast to its type's newest schema; Malformed naming the upcaster that failed."""
        chain = self._chains.get(event.event_type)
        schema = event.schema or 1
        if not chain or event.data is None or schema >= max(chain) + 1:
            return event
        data, metadata = event.data, event.metadata
        while schema in chain:
            fn = chain[schema]
            try:
                data = fn(dict(data), dict(metadata))
            except Exception as e:  # noqa: BLE001 - whatever an upcaster raises makes the event malformed, never a 500
                raise Malformed(f"upcaster {_name(fn)} ({event.event_type} schema {schema} -> {schema + 1}) raised {type(e).__name__}: {e}") from None
            if not isinstance(data, dict):
                raise Malformed(f"upcaster {_name(fn)} ({event.event_type} schema {schema} -> {schema + 1}) returned a {type(data).__name__}, not a dict")
            schema += 1
        if schema < max(chain) + 1:
            raise Malformed(f"no upcaster for {event.event_type} from schema {schema} (the newest is {max(chain) + 1})")
        return evolve(event, data=data, schema=schema)


registry = Upcasters()
"""The registry every store reads and writes with (the Django app fills it from ``upcasters.py`` modules)."""


def upcaster(event_type: str, *, from_schema: int) -> Callable[[UpcastFunction], UpcastFunction]:
    """Decorator: register ``fn(data, metadata) -> data`` upcasting ``event_type`` from ``from_schema`` to the next."""

    def register(fn: UpcastFunction) -> UpcastFunction:
        registry.register(event_type, from_schema, fn)
        return fn

    return register
