"""Files that hold patient data are created readable by their owner only (0600), from the start.

Why not chmod afterwards: between the create and the chmod the file is world-readable (under the
usual umask 022), and a crash in between leaves it so. os.open with the mode creates it private.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TextIO

PRIVATE = 0o600


def create_private(path: Path) -> bool:
    """Create `path` empty and private if it does not exist; True if this call created it."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    except FileExistsError:
        return False
    os.close(descriptor)
    return True


def open_private(path: Path) -> TextIO:
    """`path` opened to be written from the start (created 0600; a regular file already there is
    made 0600 before anything is written to it)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE)
    try:
        if stat.S_ISREG(os.fstat(descriptor).st_mode):  # not a terminal or a pipe (`--record /dev/stdout`)
            os.fchmod(descriptor, PRIVATE)
        return os.fdopen(descriptor, "w", encoding="utf-8")
    except BaseException:
        os.close(descriptor)
        raise


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, created 0600 (see open_private)."""
    with open_private(path) as file:
        file.write(text)


def write_private_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path`, created 0600 from the start (a chart, a document: patient data)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE)
    with os.fdopen(descriptor, "wb") as file:
        if stat.S_ISREG(os.fstat(descriptor).st_mode):
            os.fchmod(descriptor, PRIVATE)
        file.write(data)


def sync_file(path: str) -> None:
    """Flush a file's written data to the disk (what SQLite's synchronous=FULL does at a WAL commit)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        getattr(os, "fdatasync", os.fsync)(descriptor)
    finally:
        os.close(descriptor)
