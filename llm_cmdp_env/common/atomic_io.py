"""Files that are either complete or untouched: write to a temp file beside the target, flush it to disk,
rename it over the target (``os.replace`` is atomic on POSIX and Windows). A kill, Ctrl-C or full disk mid-write
leaves the previous file (or none), never half of a result, checkpoint or dataset."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "write_bytes_atomic", "write_json_atomic", "write_text_atomic"]


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temp path beside ``target`` for a writer that takes a path (``savefig``, ``torch.save``); on
    success it is synced and renamed over ``target``, on any exception it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> Path:
    """Replace ``target`` with ``data`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text_atomic(target: str | os.PathLike, text: str) -> Path:
    """Replace ``target`` with ``text`` (UTF-8) atomically."""
    return write_bytes_atomic(target, text.encode("utf-8"))


def write_json_atomic(target: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Replace ``target`` with ``obj`` as JSON atomically (NaN/inf refused: they are not JSON)."""
    return write_text_atomic(target, json.dumps(obj, indent=indent, allow_nan=False, default=str) + "\n")


def write_result_json(target: str | os.PathLike | None, obj: Any) -> None:
    """A benchmark's ending: write its figures to ``target`` atomically and say so (nothing when ``target`` is
    None)."""
    if target is not None:
        write_json_atomic(target, obj)
        print(f"wrote {target}")
