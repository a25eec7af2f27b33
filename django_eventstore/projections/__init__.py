"""Projections: the events stream applied, exactly once, to Django models (read models) you can query.

>>> from django_eventstore.projections import Projection, handles
"""

from .base import Projection, handles
from .errors import ProjectionError, ProjectionTimeout
from .registry import autodiscover, get_projections
from .runner import (
    CheckpointMoved,
    ProjectionState,
    acatch_up,
    await_for,
    catch_up,
    follow,
    rebuild,
    states,
    wait_for,
)

__all__ = [
    "Projection",
    "handles",
    "ProjectionError",
    "ProjectionTimeout",
    "CheckpointMoved",
    "ProjectionState",
    "get_projections",
    "autodiscover",
    "catch_up",
    "acatch_up",
    "rebuild",
    "wait_for",
    "await_for",
    "follow",
    "states",
]
