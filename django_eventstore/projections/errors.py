"""The projections' errors: a handler that failed, and a wait that ran out of time."""

from __future__ import annotations


class ProjectionError(Exception):
    """A projection's handler raised: ``name`` is the projection, ``position`` the failing event's, ``cause`` the error."""

    def __init__(self, name: str, position: int, cause: BaseException | str):
        self.name = name
        self.position = position
        self.cause = cause
        super().__init__(f"projection {name!r} failed at position {position}: {describe(cause)}")


class ProjectionTimeout(TimeoutError):
    """``wait_for`` gave up: ``behind`` maps each projection not yet at ``position`` to where it is."""

    def __init__(self, position: int, behind: dict[str, int], timeout: float, errors: dict[str, str] | None = None):
        self.position = position
        self.behind = behind
        self.timeout = timeout
        self.errors = errors or {}
        where = ", ".join(f"{name!r} at {at}" + (f" (failing: {self.errors[name]})" if self.errors.get(name) else "") for name, at in sorted(behind.items()))
        super().__init__(f"projections did not reach position {position} within {timeout:g} s: {where}")


def describe(cause: BaseException | str) -> str:
    """One line for an error: ``Type: message`` (the message's first line)."""
    if isinstance(cause, str):
        return cause
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0]}" if text else type(cause).__name__
