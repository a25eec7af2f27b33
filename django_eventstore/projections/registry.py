"""The projections of this process: every ``Projection`` subclass with a ``name``, found in installed apps' ``projections.py``."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Iterable

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import autodiscover_modules

if TYPE_CHECKING:
    from .base import Projection

_lock = threading.RLock()
_classes: dict[str, type[Projection]] = {}
_discovered = False


def register(cls: type[Projection]) -> None:
    """Register a projection class under its name (done when the class is defined); two classes may not share a name."""
    with _lock:
        known = _classes.get(cls.name)
        if known is not None and _where(known) != _where(cls):
            raise ImproperlyConfigured(f"two projections are named {cls.name!r}: {_where(known)} and {_where(cls)}")
        _classes[cls.name] = cls  # the same class defined again (a reloaded module) replaces the old one


def autodiscover() -> None:
    """Import ``projections`` of every installed app once, so their projection classes register."""
    global _discovered
    with _lock:
        if not _discovered:
            autodiscover_modules("projections")
            _discovered = True


def get_projections(names: Iterable[str] | None = None) -> dict[str, Projection]:
    """Projection name -> a new instance, sorted by name; ``names`` picks some (LookupError naming an unknown one)."""
    autodiscover()
    with _lock:
        classes = dict(sorted(_classes.items()))
    if names is not None:
        wanted = list(dict.fromkeys(names))
        unknown = [name for name in wanted if name not in classes]
        if unknown:
            known = ", ".join(classes) or "none"
            raise LookupError(f"no projection named {', '.join(map(repr, unknown))} (known: {known})")
        classes = {name: classes[name] for name in sorted(wanted)}
    return {name: cls() for name, cls in classes.items()}


def _where(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
