"""Atomic file writes: nothing written is lost or left half-written.

Every writer in the package goes through :func:`atomic_path`: the content is
written to a temporary file in the target's folder, ``fsync``-ed, moved over
the target with ``os.replace`` and the folder is ``fsync``-ed, so a reader (or a
run killed at any moment) sees either the old file or the complete new one.

Identity: after ``atomic_write_bytes(p, b)`` returns, ``p.read_bytes() == b``;
if it raises, ``p`` is unchanged and no temporary file is left behind.

Permissions: a new file gets the mode an ordinary ``open(p, "w")`` would give
it, ``0o666 & ~umask``; replacing an existing file keeps that file's mode.
(The temporary file is created ``0o600`` by :func:`tempfile.mkstemp`; its mode
is set before it replaces the target.)
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_path",
    "atomic_savefig",
    "atomic_write_bytes",
    "atomic_write_text",
    "current_umask",
]


def current_umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux ``/proc``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: read by setting and restoring it
    os.umask(mask)
    return mask


def _target_mode(target: Path) -> int:
    """``target``'s current permission bits, else ``0o666 & ~umask`` for a new file."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~current_umask()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on normal exit it replaces ``path``.

    The body writes the complete content to the yielded path (by any means:
    ``open``, ``torch.save``, ``savefig`` with an explicit format).  On an
    exception the temporary file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, _target_mode(target))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_path`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_savefig(fig: Any, path: str | os.PathLike[str], **savefig_kwargs: Any) -> None:
    """``fig.savefig(path, **savefig_kwargs)`` atomically, in the format of ``path``'s suffix.

    ``fig`` is a Matplotlib figure (anything with ``savefig``); it stays open.
    """
    fmt = Path(path).suffix.lstrip(".") or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, **savefig_kwargs)
