"""How the bank reads its older events: found at startup by django_eventstore (an app's ``upcasters`` module).

Schema 1 of AccountOpened had one ``owner`` field; schema 2 splits it into
``first_name`` and ``last_name``. Events stored as schema 1 stay as they are
and read back as schema 2.
"""

from __future__ import annotations

from typing import Any

from django_eventstore.upcasting import upcaster


@upcaster("AccountOpened", from_schema=1)
def split_owner(data: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    """``{"owner": "Ada Lovelace"}`` -> ``{"first_name": "Ada", "last_name": "Lovelace"}`` (one word: no last name)."""
    owner = data.pop("owner")
    first, _, last = str(owner).strip().partition(" ")
    return {**data, "first_name": first, "last_name": last.strip()}
