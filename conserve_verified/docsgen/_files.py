"""Writing a set of generated files so that the output directory equals it exactly."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..atomic import atomic_write_bytes as atomic_write
from ..errors import InvalidArgument

__all__ = ["atomic_write", "sync_tree"]


def _check_relative(rel: str) -> Path:
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise InvalidArgument("pages", rel, "keys must be relative paths inside the output")
    return p


def sync_tree(out_dir: Path, files: Mapping[str, str | bytes]) -> list[Path]:
    """Make ``out_dir`` contain exactly ``files`` (relative path -> content).

    Identity: afterwards the set of files under ``out_dir`` is ``files.keys()``
    and each holds its content.  Files whose content is unchanged are not
    rewritten (Sphinx then does not rebuild their pages); files that are not in
    ``files`` are deleted, so a page of a theorem that left the registry cannot
    survive.  Returns the paths written or kept, in the order of ``files``.
    """
    out_dir = Path(out_dir)
    wanted = {_check_relative(rel): content for rel, content in files.items()}
    if out_dir.exists():
        for path in sorted(out_dir.rglob("*"), reverse=True):
            rel = path.relative_to(out_dir)
            if path.is_file() and rel not in wanted:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
    kept = []
    for rel, content in wanted.items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        path = out_dir / rel
        if not (path.is_file() and path.read_bytes() == data):
            atomic_write(path, data)
        kept.append(path)
    return kept
