"""Result store: one JSON record per (experiment, configuration incl. seed, dataset).

Layout: ``<out>/records/<experiment>/<key>.json`` with ``key =
spec.config_key(config, data)``.  Every record is written atomically (temporary
file in the same directory, ``fsync``, ``os.replace``, ``fsync`` of the
directory), so a run killed at any instant leaves each record either complete
or absent; a reader never sees a half-written file.

A record is a dict with keys ``experiment``, ``config``, ``data``, ``profile``,
``key``, ``status`` (``"ok"`` or ``"error"``), ``metrics`` (dict, empty on
error), ``error`` (message or ``None``) and ``seconds``.  Only ``"ok"`` records
count as finished; a rerun retries failed cells.

A record file that cannot be read as a record (truncated by a full disk,
edited by hand) is *quarantined*: moved to ``<out>/quarantine/<experiment>/``
and listed in :attr:`ResultStore.quarantined` with the reason, so ``run``
recomputes that cell and ``report`` names it -- both in the words of
:func:`quarantine_message`.  ``<out>/runs.jsonl`` logs one line per ``run``
(command, profile, seeds, cells, wall time) for the report's header.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

from ..atomic import atomic_write_text
from ..errors import InvalidArgument
from .protocol import Record

__all__ = [
    "RECORD_KEYS",
    "ResultStore",
    "atomic_write_json",
    "atomic_write_text",
    "load_records",
    "quarantine_message",
]

#: Keys every stored record has.
RECORD_KEYS = ("experiment", "config", "data", "profile", "key", "status", "metrics", "error")


def atomic_write_json(path: pathlib.Path, obj: Any) -> None:
    """Write ``obj`` as JSON (finite numbers only) to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True, allow_nan=False) + "\n")


def quarantine_message(source: pathlib.Path, dest: pathlib.Path, reason: str) -> str:
    """The one line ``run`` and ``report`` print for a quarantined record file."""
    return f"corrupt record {source} quarantined to {dest}: {reason}"


class ResultStore:
    """The records under ``<out_dir>/records``."""

    def __init__(self, out_dir: pathlib.Path | str) -> None:
        self.out_dir = pathlib.Path(out_dir)
        self.root = self.out_dir / "records"
        self.quarantine_root = self.out_dir / "quarantine"
        #: ``(source, destination, reason)`` of every record file quarantined by this store.
        self.quarantined: list[tuple[pathlib.Path, pathlib.Path, str]] = []

    def quarantine_messages(self) -> list[str]:
        """:func:`quarantine_message` of every quarantined file, in order."""
        return [quarantine_message(*q) for q in self.quarantined]

    def _quarantine(self, p: pathlib.Path, reason: str) -> None:
        dest_dir = self.quarantine_root / p.parent.name
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / p.name
        k = 1
        while dest.exists():
            dest = dest_dir / f"{p.stem}.{k}{p.suffix}"
            k += 1
        os.replace(p, dest)
        self.quarantined.append((p, dest, reason))

    def _load_or_quarantine(self, p: pathlib.Path) -> Record | None:
        try:
            return self._load(p)
        except InvalidArgument as exc:
            self._quarantine(p, exc.reason)
            return None

    def note_run(self, entry: dict[str, Any]) -> None:
        """Append ``entry`` (one JSON line) to ``<out>/runs.jsonl``."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        line = json.dumps(entry, sort_keys=True, allow_nan=False) + "\n"
        with open(self.out_dir / "runs.jsonl", "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def runs(self) -> list[dict[str, Any]]:
        """The entries of ``<out>/runs.jsonl`` (unreadable lines skipped)."""
        path = self.out_dir / "runs.jsonl"
        if not path.is_file():
            return []
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict):
                out.append(entry)
        return out

    def path(self, experiment: str, key: str) -> pathlib.Path:
        """Where the record of ``(experiment, key)`` lives."""
        return self.root / experiment / f"{key}.json"

    def read(self, experiment: str, key: str) -> Record | None:
        """The stored record, or ``None`` if absent."""
        p = self.path(experiment, key)
        if not p.exists():
            return None
        return self._load_or_quarantine(p)

    def is_finished(self, experiment: str, key: str) -> bool:
        """True iff an ``"ok"`` record exists for ``(experiment, key)``."""
        rec = self.read(experiment, key)
        return rec is not None and rec.get("status") == "ok"

    def write(self, record: Record) -> pathlib.Path:
        """Store ``record`` atomically (replacing an earlier one for the same cell)."""
        missing = [k for k in RECORD_KEYS if k not in record]
        if missing:
            raise InvalidArgument("record", record, f"lacks keys {missing}")
        p = self.path(record["experiment"], record["key"])
        atomic_write_json(p, record)
        return p

    def records(self, experiment: str | None = None, status: str | None = "ok") -> list[Record]:
        """All records (of one experiment, with one status; ``None`` = any), sorted by path."""
        if not self.root.is_dir():
            return []
        dirs = [self.root / experiment] if experiment else sorted(self.root.iterdir())
        out: list[Record] = []
        for d in dirs:
            if not d.is_dir():
                continue
            for p in sorted(d.glob("*.json")):
                rec = self._load_or_quarantine(p)
                if rec is None:
                    continue
                if status is None or rec.get("status") == status:
                    out.append(rec)
        return out

    @staticmethod
    def _load(p: pathlib.Path) -> Record:
        try:
            rec = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidArgument("record file", str(p), f"cannot be read as JSON: {exc}") from None
        if not isinstance(rec, dict) or any(k not in rec for k in RECORD_KEYS):
            raise InvalidArgument("record file", str(p), f"is not a record with keys {RECORD_KEYS}")
        return rec


def load_records(out_dir: pathlib.Path | str, status: str | None = "ok") -> Any:
    """The records under ``out_dir`` as a :class:`pandas.DataFrame`, one row per cell.

    Columns: ``experiment``, ``data``, ``profile``, ``key``, ``status``, ``seconds``,
    ``error``, then ``config.<name>``, ``metrics.<name>`` and ``runtime.<name>`` for
    every (nested) entry (``pandas.json_normalize``; lists stay Python lists).
    Identity: ``len(load_records(d, s)) == len(ResultStore(d).records(status=s))``.
    Corrupt record files are quarantined as by :meth:`ResultStore.records`.
    """
    import pandas as pd

    recs = ResultStore(out_dir).records(status=status)
    if not recs:
        return pd.DataFrame(
            columns=["experiment", "data", "profile", "key", "status", "seconds", "error"]
        )
    return pd.json_normalize(recs, sep=".")
