"""Atomic file writes: nothing the user has is lost to a crash or a full disk."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike, *, copy_existing: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it only if the block succeeds.

    The temporary name keeps the last two suffixes (``.xyz.gz``, ``.npz``), so that
    writers which choose a format by name still see it. With ``copy_existing``, an
    existing file is copied there first (to append to a database, say).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp{''.join(path.suffixes[-2:])}"
    if copy_existing and path.exists():
        shutil.copy2(path, tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
