"""Private files: what tickline writes (stores, logs, status, secrets) is the user's alone.

Every directory a component creates is 0700 and every file 0600, whatever the
process umask, so another local user reads nothing (stores hold order flow;
status files name sessions and peers).  Existing directories keep their mode:
an operator who made one group-readable on purpose keeps that choice.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PRIVATE_FILE", "PRIVATE_DIR", "private_opener", "make_private_dirs"]

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def private_opener(path: str, flags: int) -> int:
    """An ``opener`` for :func:`open`: a file it creates is 0600 (the umask can only remove bits)."""
    return os.open(path, flags, PRIVATE_FILE)


def make_private_dirs(path: str | os.PathLike[str]) -> None:
    """``mkdir -p`` with every directory it creates 0700."""
    p = Path(path)
    if p.is_dir():
        return
    make_private_dirs(p.parent) if not p.parent.is_dir() else None
    try:
        p.mkdir(mode=PRIVATE_DIR)
    except FileExistsError:
        pass
