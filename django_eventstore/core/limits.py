"""The store's limits, in one place: the engine enforces them, the REST API, admin and commands follow them."""

from __future__ import annotations

MAX_ACTOR_ID_BYTES = 256  # an actor id in UTF-8; keeps a subject far below the server's 4,096-byte control line
MAX_EVENT_TYPE_LENGTH = 256  # characters
MAX_EVENT_ID_LENGTH = 128  # characters
MAX_APPEND = 1000  # events in one append: the server's limit of messages in one atomic batch
MAX_PAGE = 1000  # actors in one list_actors page, or per batched lookup (multi_last answers at most 1,024 subjects)
DEFAULT_PAGE = 100  # the default limit of list_actors and read_all
READ_BATCH = 4096  # messages asked of the server in one batched direct get
