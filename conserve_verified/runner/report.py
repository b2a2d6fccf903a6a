"""The report: claims table (paper vs ours) and each experiment's section, as Markdown and HTML.

:func:`build_report` reads every ``"ok"`` record under ``<out>/records``, groups
them by (experiment, dataset), asks each experiment for its Markdown section
(``report(records, out_dir)``, plots written next to ``report.md``) and, when it
defines the optional ``claim_rows(records)``, for its paper-vs-ours rows (see
:mod:`.verdict`).  Every claim of ``claims.json`` gets a line in the claims
table, also those no experiment has measured yet.  Failed cells and
experiments whose report raised are listed, not hidden.

Files written (atomically): ``<out>/report.md`` and ``<out>/report.html``.
"""

from __future__ import annotations

import html
import pathlib
import re
import traceback
from dataclasses import dataclass, field
from typing import Any

from .claims import load_claims
from .discovery import Discovery
from .store import ResultStore, atomic_write_text
from .tables import fmt_num, fmt_p, group_by, markdown_table
from .verdict import VERDICTS

__all__ = ["ReportResult", "build_report", "markdown_to_html"]


@dataclass
class ReportResult:
    """Paths written and problems met while building the report."""

    markdown: pathlib.Path
    html: pathlib.Path
    problems: list[str] = field(default_factory=list)


def _digits(x: float | None) -> int:
    """3 decimals for values below 1 in magnitude (effect sizes, η²), else 1."""
    return 3 if x is not None and abs(x) < 1 else 1


def _ours(row: dict[str, Any]) -> str:
    if row.get("mean") is None:
        return "–"
    k = _digits(row["paper"])
    if row.get("low") is None:
        return f"{fmt_num(row['mean'], k)} (n={row.get('n', 0)})"
    lo, hi = fmt_num(row["low"], k), fmt_num(row["high"], k)
    return f"{fmt_num(row['mean'], k)} [{lo}, {hi}] (n={row['n']})"


def _claims_section(rows: list[dict[str, Any]], discovery: Discovery | None) -> str:
    claims = load_claims()["claims"]
    by_claim = group_by(rows, lambda r: r["claim"])
    table = []
    for c in claims:
        cid = c["id"]
        if cid in by_claim:
            for r in by_claim[cid]:
                effect = "–" if r.get("effect_size") is None else f"{r['effect_size']:.2f}"
                table.append(
                    [
                        cid,
                        r["quantity"],
                        fmt_num(r["paper"], _digits(r["paper"])),
                        _ours(r),
                        fmt_p(r.get("p_value")),
                        effect,
                        f"**{r['verdict']}**",
                        r.get("note", ""),
                    ]
                )
        else:
            speakers = []
            if discovery is not None:
                speakers = sorted(e.name for e in discovery.experiments.values() if cid in e.claims)
            what = c.get("statement") or c.get("statements") or c.get("metric", "")
            if isinstance(what, list):
                what = "; ".join(what)
            status = (
                f"no records yet (experiments: {', '.join(speakers)})"
                if speakers
                else "no experiment in this run measures it"
            )
            table.append([cid, str(what), "–", "–", "–", "–", "not measured", status])
    text = [
        "## Claims: paper vs reproduced",
        "",
        "Ours: mean [95% CI] (n runs). Welch p: our two arms compared (differences) or our "
        "runs vs the paper's mean ± SD (levels). Effect size: Hedges' g. Verdict rules: "
        "*reproduced* = the paper's value lies in our 95% CI; *partly* = our difference is "
        "significant (p < 0.05) in the paper's direction but the paper's size is outside our "
        "CI; *not reproduced* = otherwise; *insufficient runs* = fewer than 2 runs per arm.",
        "",
        markdown_table(
            ["claim", "quantity", "paper", "ours", "Welch p", "effect (g)", "verdict", "note"],
            table,
        ),
    ]
    counts = {v: sum(1 for r in rows if r["verdict"] == v) for v in VERDICTS}
    text += ["", "Verdict counts: " + ", ".join(f"{k}: {v}" for k, v in counts.items()), ""]
    return "\n".join(text)


def build_report(out_dir: pathlib.Path | str, discovery: Discovery | None = None) -> ReportResult:
    """Write ``report.md`` and ``report.html`` for the records under ``out_dir``."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = ResultStore(out)
    ok = store.records(status="ok")
    failed = store.records(status="error")
    problems: list[str] = []
    sections: list[str] = []
    rows: list[dict[str, Any]] = []
    experiments = discovery.experiments if discovery is not None else {}
    if discovery is not None:
        problems += [
            f"experiment module {m!r} not loaded: {e}" for m, e in discovery.errors.items()
        ]
    groups = group_by(ok, lambda r: (r["experiment"], r["data"]))
    for (name, data), recs in groups.items():
        exp = experiments.get(name)
        if exp is None:
            problems.append(f"records of unknown experiment {name!r} ({len(recs)}) not reported")
            continue
        try:
            section = exp.report(recs, out)
            sections.append(f"{section}\n\n*dataset: {data}; {len(recs)} records*\n")
        except Exception as exc:
            tb = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            problems.append(f"report() of {name!r} on {data!r} failed: {tb}")
        fn = getattr(exp.module, "claim_rows", None)
        if callable(fn):
            try:
                rows += [dict(r, note=r.get("note") or f"dataset: {data}") for r in fn(recs)]
            except Exception as exc:
                tb = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                problems.append(f"claim_rows() of {name!r} on {data!r} failed: {tb}")
    head = [
        "# conserve_verified: experiment report",
        "",
        f"{len(ok)} finished cells from {len(groups)} (experiment, dataset) groups; "
        f"{len(failed)} failed cells.",
        "",
    ]
    if failed:
        head += ["## Failed cells", ""]
        for r in failed:
            last = (r.get("error") or "").strip().splitlines()[-1:] or ["?"]
            head.append(f"- `{r['experiment']}` {r['config']}: {last[0]}")
        head.append("")
    if problems:
        head += ["## Problems", ""] + [f"- {p}" for p in problems] + [""]
    md = "\n".join(head) + "\n" + _claims_section(rows, discovery) + "\n" + "\n".join(sections)
    md_path, html_path = out / "report.md", out / "report.html"
    atomic_write_text(md_path, md)
    atomic_write_text(html_path, markdown_to_html(md, "conserve_verified report"))
    return ReportResult(
        md_path, html_path, problems + [f"failed cell: {r['experiment']}" for r in failed]
    )


_INLINE = [
    (re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)"), r'<img alt="\1" src="\2">'),
    (re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)"), r'<a href="\2">\1</a>'),
    (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])"), r"<em>\1</em>"),
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
]


def _inline(text: str) -> str:
    out = html.escape(text, quote=False)
    for pat, rep in _INLINE:
        out = pat.sub(rep, out)
    return out


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def markdown_to_html(md: str, title: str) -> str:
    """HTML for the Markdown subset the reports use.

    Supported: ``#``-headings, pipe tables, ``-`` lists, images, links,
    ``**bold**``, ``*italic*``, ``code`` spans, paragraphs.  Text is HTML-escaped.
    """
    lines = md.splitlines()
    body: list[str] = []
    i = 0
    para: list[str] = []

    def flush() -> None:
        if para:
            body.append("<p>" + _inline(" ".join(para)) + "</p>")
            para.clear()

    while i < len(lines):
        line = lines[i]
        m = re.match(r"^(#{1,6})\s+(.*)$", line)
        if m:
            flush()
            level = len(m.group(1))
            body.append(f"<h{level}>{_inline(m.group(2))}</h{level}>")
            i += 1
        elif (
            line.startswith("|")
            and i + 1 < len(lines)
            and re.match(r"^\|(\s*:?-+:?\s*\|)+\s*$", lines[i + 1])
        ):
            flush()
            head = _cells(line)
            body.append(
                "<table><thead><tr>"
                + "".join(f"<th>{_inline(c)}</th>" for c in head)
                + "</tr></thead><tbody>"
            )
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                body.append(
                    "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(lines[i])) + "</tr>"
                )
                i += 1
            body.append("</tbody></table>")
        elif re.match(r"^\s*[-*]\s+", line):
            flush()
            body.append("<ul>")
            while i < len(lines) and re.match(r"^\s*[-*]\s+", lines[i]):
                body.append("<li>" + _inline(re.sub(r"^\s*[-*]\s+", "", lines[i])) + "</li>")
                i += 1
            body.append("</ul>")
        elif not line.strip():
            flush()
            i += 1
        else:
            para.append(line.strip())
            i += 1
    flush()
    style = (
        "body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:.25em .5em}"
        "th{background:#f4f4f4}img{max-width:100%}"
    )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{style}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
