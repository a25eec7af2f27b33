"""The demo's master key when ``EVENTSTORE_MASTER_KEY`` is not set: made once, kept in the demo's data directory.

Fine for a demo on one machine; a real project reads its master key from the
environment or a secret store, never from a file next to the data it protects.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet


def demo_master_key(data_dir: Path) -> str:
    path = data_dir / "master.key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    key = Fernet.generate_key().decode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    return key
