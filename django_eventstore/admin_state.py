"""The "State" section of the admin's actor page: the state at a version and what that version's event changed.

Shown for actors whose type has a registered aggregate (``Aggregate.actor_type``).
``?at=N`` picks the version (default: the latest); the section's links keep
the page's other parameters (the events' order and window).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.http import QueryDict

from .admin_views import positive_int, pretty_json, query_string
from .aggregates import aggregate_for
from .core.events import Event
from .core.facade import EventStore
from .time_travel import Change, Step, TimeTravelError, step_at

PARAM = "at"
ANCHOR = "#state"
MAX_CHANGES_SHOWN = 500  # a state with more changed keys lists these first and says how many more


@dataclass
class ChangeRow:
    """One changed key as the page shows it: its path, kind and both values as indented JSON."""

    change: Change

    @property
    def kind(self) -> str:
        return self.change.kind

    @property
    def path(self) -> list[str]:
        """The path's keys as text, list indexes written ``[2]``; ``(the whole state)`` for an empty path."""
        return [f"[{p}]" if isinstance(p, int) else p for p in self.change.path] or ["(the whole state)"]

    @property
    def before_json(self) -> str:
        return "" if self.kind == "added" else pretty_json(self.change.before)

    @property
    def after_json(self) -> str:
        return "" if self.kind == "removed" else pretty_json(self.change.after)


@dataclass
class StateSection:
    """What the template shows; ``error`` replaces the state and diff when the state cannot be computed."""

    aggregate: str
    version: int
    latest_version: int
    links: dict[str, str]  # "previous", "next", "latest"
    hidden: list[tuple[str, str]]  # the page's other parameters, kept by the version form
    step: Step | None = None
    error: str = ""
    notice: str = ""
    rows: list[ChangeRow] = field(default_factory=list)
    more_changes: int = 0

    @property
    def state_json(self) -> str:
        return pretty_json(self.step.at.state) if self.step else ""

    @property
    def event(self) -> Event | None:
        return self.step.event if self.step else None


def state_section(store: EventStore, actor_id: str, params: QueryDict, latest_version: int) -> StateSection | None:
    """The section for the actor page, or None when no aggregate is registered for the actor's type.

    A version above the latest shows the latest with a notice (as the events'
    ``from`` does); a replay that stops or is too long shows why, never a 500.
    """
    cls = aggregate_for(actor_id)
    if cls is None or latest_version < 1:
        return None
    asked = positive_int(params, PARAM)
    version = latest_version if asked is None or asked > latest_version else asked
    kept = {k: v for k, v in params.items() if k != PARAM}
    section = StateSection(
        aggregate=f"{cls.__module__}.{cls.__qualname__}",
        version=version,
        latest_version=latest_version,
        links=_links(kept, version, latest_version),
        hidden=sorted(kept.items()),
    )
    if asked is not None and asked > latest_version:
        section.notice = f"There is no version {asked}: the latest version is {latest_version}, so the section shows its state."
    try:
        section.step = step_at(actor_id, version, store=store)
    except TimeTravelError as e:
        section.error = str(e)
        return section
    section.rows = [ChangeRow(c) for c in section.step.changes[:MAX_CHANGES_SHOWN]]
    section.more_changes = max(len(section.step.changes) - MAX_CHANGES_SHOWN, 0)
    return section


def _links(kept: dict[str, Any], version: int, latest: int) -> dict[str, str]:
    """Query strings (with the section's anchor) of the previous, next and latest versions, where they exist."""
    links = {}
    if version > 1:
        links["previous"] = query_string(kept, **{PARAM: version - 1}) + ANCHOR
    if version < latest:
        links["next"] = query_string(kept, **{PARAM: version + 1}) + ANCHOR
        links["latest"] = query_string(kept) + ANCHOR
    return links
