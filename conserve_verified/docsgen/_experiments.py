"""Experiment pages: each experiment's latest report section and plots.

The records come from the result store of a run directory
(``<report_dir>/records/<experiment>/*.json``, see
:mod:`conserve_verified.runner.store`); each experiment's own ``report``
function (the experiment protocol) turns them into a Markdown section and PNG
plots, which become a reST page with its images.  An experiment that has no
records gets a page saying how to produce them; one whose ``report`` raises
gets a page showing the error -- never a made-up table.
"""

from __future__ import annotations

import tempfile
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import _rst
from ._markdown import markdown_to_rst

__all__ = ["experiment_evidence", "experiment_pages", "render_experiment_page"]


def _discover() -> tuple[dict[str, Any], dict[str, str]]:
    from ..runner import discover

    found = discover()
    return dict(found.experiments), dict(found.errors)


def _records(report_dir: Path | None, name: str) -> tuple[list[dict[str, Any]], int]:
    if report_dir is None:
        return [], 0
    from ..runner import ResultStore

    store = ResultStore(report_dir)
    return store.records(name), len(store.records(name, status="error"))


def render_experiment_page(
    experiment: Any,
    records: list[dict[str, Any]],
    n_errors: int,
    section: str | None,
    error: str | None,
) -> str:
    """The page of one experiment (``section`` is its report, already reST)."""
    name = str(experiment.name)
    title = str(experiment.title)
    if not title.lower().startswith(name.lower()):
        title = f"{name}: {title}"
    out = [f".. _experiment-{name}:\n", _rst.heading(title, 1)]
    claims = ", ".join(experiment.claims) if experiment.claims else "none"
    profiles = sorted({str(r.get("profile", "?")) for r in records})
    datasets = sorted({str(r.get("data", "?")) for r in records})
    out.append(
        _rst.field_list(
            [
                ("Claims", _rst.escape(claims)),
                ("Records", f"{len(records)} finished, {n_errors} failed"),
                ("Profiles", _rst.escape(", ".join(profiles) or "none")),
                ("Data", _rst.escape(", ".join(datasets) or "none")),
                ("Run it", _rst.inline_literal(f"conserve-verified run {name} --profile quick")),
            ]
        )
    )
    if error is not None:
        out.append(
            _rst.directive(
                "error",
                body="The experiment's report failed on the stored records:\n\n"
                + _rst.directive("code-block", "text", body=error),
            )
        )
    elif not records:
        command = f"conserve-verified run {name} --profile quick --out results"
        out.append(
            "No records of this experiment were found when the documentation was built.  "
            f"Run {_rst.inline_literal(command)} and rebuild the documentation.\n"
        )
    if section is not None:
        out.append(section)
    return "\n".join(out)


def _label(data: str) -> str:
    """The dataset's human label (e.g. "Fashion-MNIST"), or the name itself."""
    try:
        from ..data import dataset_label

        return str(dataset_label(data))
    except Exception:
        return data


def _by_dataset(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Records grouped by dataset (an experiment reports each dataset separately)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(str(r.get("data", "?")), []).append(r)
    return dict(sorted(out.items()))


def _prefix(name: str) -> Callable[[str], str]:
    """Image path of a report section as seen from the experiment's page."""

    def rewrite(src: str) -> str:
        return f"{name}/{src}"

    return rewrite


def experiment_pages(report_dir: Path | None) -> dict[str, str | bytes]:
    """``experiments/index.rst``, one page per discovered experiment, and its plots."""
    experiments, problems = _discover()
    out: dict[str, str | bytes] = {}
    names = sorted(experiments)
    rows = []
    for name in names:
        exp = experiments[name]
        records, n_errors = _records(report_dir, name)
        sections: list[str] = []
        errors: list[str] = []
        for data, group in _by_dataset(records).items():
            with tempfile.TemporaryDirectory(prefix=f"report-{name}-") as tmp:
                tmp_dir = Path(tmp)
                try:
                    markdown = exp.report(group, tmp_dir)
                except Exception:
                    errors.append(f"dataset {data}:\n{traceback.format_exc(limit=3)}")
                    continue
                prefix = f"{name}/{data}"
                sections.append(
                    _rst.heading(f"Dataset {data} ({len(group)} records)", 2)
                    + "\n"
                    + markdown_to_rst(str(markdown), tmp_dir, rewrite_image=_prefix(prefix))
                )
                for png in sorted(tmp_dir.rglob("*")):
                    if png.is_file():
                        rel = png.relative_to(tmp_dir).as_posix()
                        out[f"experiments/{prefix}/{rel}"] = png.read_bytes()
        section = "\n".join(sections) if sections else None
        error = "\n".join(errors) if errors else None
        out[f"experiments/{name}.rst"] = render_experiment_page(
            exp, records, n_errors, section, error
        )
        rows.append(
            [
                f":ref:`{_rst.escape(name)} <experiment-{name}>`",
                _rst.escape(exp.title),
                _rst.escape(", ".join(exp.claims) or "–"),
                str(len(records)),
            ]
        )
    index = [
        _rst.heading("Experiments", 1),
        "Each experiment's latest report, regenerated from the stored records of "
        + (
            f"{_rst.inline_literal(str(report_dir))}"
            if report_dir is not None
            else "no run directory (none was found when the documentation was built)"
        )
        + " by the experiment's own report function.\n",
    ]
    if rows:
        index.append(_rst.list_table(["experiment", "title", "claims", "records"], rows))
    else:
        index.append("No experiment is defined.\n")
    for module, problem in sorted(problems.items()):
        index.append(
            _rst.directive(
                "warning",
                body=f"Experiment module {_rst.inline_literal(module)} could not be loaded: "
                + _rst.escape(problem),
            )
        )
    index.append(
        _rst.directive(
            "toctree", options=[("hidden", ""), ("maxdepth", "1")], body="\n".join(names) or " "
        )
    )
    out["experiments/index.rst"] = "\n".join(index)
    return out


def _claim_row_text(row: Mapping[str, Any], name: str, data: str) -> str:
    from ..runner.tables import fmt_num, fmt_p

    ours = fmt_num(row.get("mean"))
    if row.get("low") is not None:
        ours += f" [{fmt_num(row.get('low'))}, {fmt_num(row.get('high'))}]"
    ours += f" (n={row.get('n', 0)})"
    paper = fmt_num(row.get("paper"))
    holm = row.get("p_holm") is not None
    p_value = fmt_p(row.get("p_holm") if holm else row.get("p_value"))
    p_label = "Holm p" if holm else "p"
    method = str(row.get("method") or "")
    compare = str(row.get("compare") or "effect")
    return (
        f"{_rst.escape(str(row.get('quantity', '')))} ({_rst.escape(compare)}): ours "
        f"{_rst.escape(ours)} vs paper {_rst.escape(paper)}, {p_label} {_rst.escape(p_value)}"
        + (f" ({_rst.escape(method)})" if method else "")
        + f" -- **{_rst.escape(str(row.get('verdict', '?')))}** "
        f"(:ref:`{_rst.escape(name)} <experiment-{name}>`, {_rst.escape(data)})"
    )


def experiment_evidence(report_dir: Path | None) -> Mapping[str, list[str]]:
    """Per claim id, our measured numbers and verdicts, with links to the experiment pages.

    Numbers come from an experiment's optional ``claim_rows(records)`` (the
    rows of the runner's claims table, see :mod:`conserve_verified.runner.verdict`);
    an experiment without it, or without records, is linked with its record count.
    """
    experiments, _ = _discover()
    out: dict[str, list[str]] = {}
    for name in sorted(experiments):
        exp = experiments[name]
        records = _records(report_dir, name)[0]
        fn = getattr(exp.module, "claim_rows", None)
        measured: set[str] = set()
        if callable(fn):
            for data, group in _by_dataset(records).items():
                try:
                    from ..runner.verdict import holm_adjust

                    rows = holm_adjust(list(fn(group)))
                except Exception as exc:
                    for cid in exp.claims:
                        out.setdefault(cid, []).append(
                            f"claim_rows() of :ref:`{_rst.escape(name)} <experiment-{name}>` "
                            f"failed on {_rst.escape(data)}: {_rst.escape(repr(exc))}"
                        )
                    continue
                for row in rows:
                    cid = str(row.get("claim"))
                    measured.add(cid)
                    out.setdefault(cid, []).append(_claim_row_text(row, name, _label(data)))
        for cid in exp.claims:
            if cid in measured:
                continue
            out.setdefault(cid, []).append(
                f"measured by :ref:`{_rst.escape(name)} <experiment-{name}>` "
                + (f"({len(records)} records)" if records else "(no records in this build)")
            )
    return out
