"""``Projection`` and ``@handles``: a class that turns events of the global feed into rows of Django models."""

from __future__ import annotations

from typing import Any, Callable, ClassVar, TypeVar

from django.core.exceptions import ImproperlyConfigured

from django_eventstore.core.events import Event
from django_eventstore.core.subjects import actor_type

MAX_NAME_LENGTH = 100
#: The most events the store reads in one step of its feed.
MAX_BATCH_SIZE = 4096
F = TypeVar("F", bound=Callable[..., Any])
_HANDLES = "_eventstore_handles"


def handles(*event_types: str) -> Callable[[F], F]:
    """Mark a method as the handler of these event types (``@handles("MoneyDeposited", "MoneyWithdrawn")``)."""
    if not event_types or not all(isinstance(t, str) and t for t in event_types):
        raise ImproperlyConfigured(f"@handles needs one or more event type names, got {event_types!r}")

    def mark(method: F) -> F:
        setattr(method, _HANDLES, tuple(getattr(method, _HANDLES, ())) + event_types)
        return method

    return mark


class Projection:
    """Base of a projection: set ``name``, write ``@handles`` methods, and ``reset()`` for rebuilds.

    A subclass that sets ``name`` is registered when it is defined; put it in
    ``<app>/projections.py`` and it is found in every installed app, as
    ``admin.py`` is. Handlers run inside the batch's transaction on
    ``database``: write the read models there, and do nothing that cannot be
    rolled back (no e-mails, no HTTP calls). For speed, handlers may collect
    and ``flush()`` write once per batch (``begin_batch()`` resets what they
    collect); the result must not depend on where batches start and end.
    """

    name: ClassVar[str]
    #: Only events of these actor types reach the handlers (None: every actor).
    actor_types: ClassVar[list[str] | None] = None
    #: Events per transaction (and per read of the store).
    batch_size: ClassVar[int] = 500
    #: The database alias of the read models and of the checkpoint.
    database: ClassVar[str] = "default"
    #: Event type -> name of the method handling it, collected from ``@handles``.
    handlers: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            own: dict[str, str] = {}
            for attr, value in vars(klass).items():
                for event_type in getattr(value, _HANDLES, ()):
                    if event_type in own and own[event_type] != attr:
                        raise ImproperlyConfigured(f"{klass.__qualname__}: event type {event_type!r} is handled by both {own[event_type]}() and {attr}()")
                    own[event_type] = attr
            handlers.update(own)
        cls.handlers = handlers
        if "name" in vars(cls):
            _check(cls)
            from .registry import register

            register(cls)

    def handle(self, event: Event) -> None:
        """Apply one event: call its handler, if this projection has one for its type."""
        method = self.handlers.get(event.event_type)
        if method is not None:
            getattr(self, method)(event)

    def begin_batch(self) -> None:
        """Called at the start of each batch's transaction, before its first handler: reset what the handlers collect.

        A batch's transaction may roll back and run again (a handler failed:
        the events before it are applied again, without it), so whatever the
        handlers gather for ``flush()`` must start empty here, not only after a flush.
        """

    def flush(self) -> None:
        """Called after the batch's last handler, in its transaction, before the checkpoint commits: write what the handlers collected.

        Handlers may collect (``self.pending[event.actor_id] += 1``) and
        ``flush()`` write the batch in a few queries instead of one per event.
        Called only for batches with events this projection handles.
        """

    def wants(self, event: Event) -> bool:
        """Whether the event reaches a handler (its actor type is followed and its type handled)."""
        if event.event_type not in self.handlers:
            return False
        return self.actor_types is None or actor_type_of(event) in self.actor_types

    def reset(self) -> None:
        """Empty the read models before a rebuild (runs in the rebuild's transaction); override it to allow rebuilds."""
        raise NotImplementedError(f"projection {self.name!r} cannot be rebuilt: define its reset() to empty its read models")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def actor_type_of(event: Event) -> str:
    """The actor type of an event's actor (the id's part before its first ``-``; ``_`` when none)."""
    return actor_type(event.actor_id or "")


def _check(cls: type[Projection]) -> None:
    name = vars(cls)["name"]
    where = f"{cls.__module__}.{cls.__qualname__}"
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH or name != name.strip():
        raise ImproperlyConfigured(f"{where}.name must be a non-empty string of at most {MAX_NAME_LENGTH} characters, got {name!r}")
    types = cls.actor_types
    if types is not None and (isinstance(types, str) or not all(isinstance(t, str) and t for t in types) or not types):
        raise ImproperlyConfigured(f"{where}.actor_types must be a non-empty list of actor type names or None, got {types!r}")
    if type(cls.batch_size) is not int or not 1 <= cls.batch_size <= MAX_BATCH_SIZE:
        raise ImproperlyConfigured(f"{where}.batch_size must be an int from 1 to {MAX_BATCH_SIZE}, got {cls.batch_size!r}")
    if not isinstance(cls.database, str) or not cls.database:
        raise ImproperlyConfigured(f"{where}.database must be a database alias, got {cls.database!r}")
