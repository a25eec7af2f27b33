"""Upcasting for Django projects: ``@upcaster`` functions in an app's ``upcasters.py`` are found at startup.

    from django_eventstore.upcasting import upcaster

    @upcaster("AccountOpened", from_schema=1)
    def split_owner(data, metadata):
        first, _, last = data.pop("owner").partition(" ")
        return {**data, "first_name": first, "last_name": last}

Reads return events upcast to the newest schema; see docs/upcasting.md.
"""

from __future__ import annotations

from django.utils.module_loading import autodiscover_modules

from .core.upcasting import Upcasters, UpcastFunction, registry, upcaster

__all__ = ["upcaster", "registry", "Upcasters", "UpcastFunction", "autodiscover"]


def autodiscover() -> None:
    """Import every installed app's ``upcasters`` module, registering its upcasters (AppConfig.ready calls it)."""
    autodiscover_modules("upcasters")
