"""The report: every claim's verdict rows (experiments and proofs joined) and each experiment's
section, as Markdown and HTML.

:func:`build_report` reads every ``"ok"`` record under ``<out>/records``, groups
them by (experiment, dataset), asks each experiment for its Markdown section
(``report(records, out_dir)``, plots written next to ``report.md``) and, when it
defines ``claim_rows(records)``, for its paper-vs-ours rows (see
:mod:`.verdict`).  It also reads the proof certificate written by
``conserve-verified verify --json`` (default ``<out>/certificate.json``):
every theorem that ``refutes`` a claim gives that claim a ``refuted`` row with
the counterexample, and the claim's corrected statement (:data:`CORRECTED_BY`)
a ``proved`` row with its scope -- claim B is closed by a proof, not an
experiment.  Every claim of ``claims.json`` ends with at least one row: a claim
whose experiments ran but could not decide it reads *grid too small for a
verdict* with the reason.  p-values are Holm-corrected per (claim, dataset)
(:func:`.verdict.holm_adjust`).

The header states what the evidence is: profile(s), dataset(s), seeds per
arm, cells, run time (from ``<out>/runs.jsonl``) and the certificate used; a
store holding only ``smoke`` records is marked *not evidence*.  Failed cells,
quarantined record files and experiments whose report raised are listed, not
hidden.

Files written (atomically): ``<out>/report.md`` and ``<out>/report.html``
(the HTML by markdown-it-py with raw HTML disabled, so text from records is
always escaped).
"""

from __future__ import annotations

import html
import json
import pathlib
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .claims import load_claims
from .discovery import Discovery
from .store import ResultStore, atomic_write_text
from .tables import fmt_num, fmt_p, group_by, markdown_table
from .verdict import GRID_TOO_SMALL, VERDICTS, holm_adjust, proof_row

__all__ = [
    "CORRECTED_BY",
    "NoRecords",
    "ReportResult",
    "build_report",
    "certificate_rows",
    "load_certificate",
    "markdown_to_html",
    "summary_table",
]

#: The theorem that states the corrected form of a refuted claim.
CORRECTED_BY = {"B": "T5"}

#: Claims whose rows come from the proof certificate (no experiment measures them).
PROOF_CLAIMS = ("B",)

VERDICT_RULES = (
    "Verdicts (95% CIs; *significant* = p < 0.05 after Holm's correction over the rows of one "
    "claim on one dataset): **reproduced** — the paper's value lies in our CI *and* the CI "
    "excludes no effect (for a claimed non-effect: the CI lies inside ±margin; for a level: "
    "inside ±margin of the paper's value when a margin is stated); **consistent but "
    "inconclusive** — the CI contains the paper's value but is too wide to tell; **smaller** / "
    "**larger** — significant, same sign, the CI entirely below / above the paper's value; "
    "**not reproduced** — no significant effect and the CI excludes the paper's value; "
    "**reversed** — significant with the opposite sign; **refuted** — the proof engine found "
    "a counterexample; **proved** — the corrected statement holds (scope given); **grid too "
    "small for a verdict** — fewer than 2 seeds per arm or no CI (e.g. the smoke profile). "
    "*compare*: **effect** rows are differences between arms (used whenever our dataset "
    "differs from the paper's); **level** rows compare one arm's level with the paper's; "
    "**proof** rows come from the certificate."
)


class NoRecords(Exception):
    """The output folder is missing or holds no records (the CLI prints one line, exit 2)."""


@dataclass
class ReportResult:
    """Paths written and problems met while building the report."""

    markdown: pathlib.Path
    html: pathlib.Path
    problems: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


def _digits(x: float | None) -> int:
    """3 decimals for values below 1 in magnitude (effect sizes, η²), else 1."""
    return 3 if x is not None and abs(x) < 1 else 1


def _ours(row: dict[str, Any]) -> str:
    if row.get("mean") is None:
        return "–"
    k = _digits(row["paper"] if row.get("paper") is not None else row["mean"])
    if row.get("low") is None:
        return f"{fmt_num(row['mean'], k)} (n={row.get('n', 0)})"
    lo, hi = fmt_num(row["low"], k), fmt_num(row["high"], k)
    return f"{fmt_num(row['mean'], k)} [{lo}, {hi}] (n={row['n']})"


def _label(data: str) -> str:
    try:
        from ..data import dataset_label

        return str(dataset_label(data))
    except Exception:
        return data


# --------------------------------------------------------------------------- certificate


def load_certificate(path: pathlib.Path | str) -> tuple[dict[str, Any] | None, str]:
    """``(certificate, problem)``: the parsed certificate, or ``None`` and why not."""
    p = pathlib.Path(path)
    if not p.is_file():
        return None, f"no certificate at {p}"
    try:
        cert = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"certificate {p} cannot be read: {exc}"
    if not isinstance(cert, dict) or not isinstance(cert.get("theorems"), list):
        return None, f"certificate {p} has no theorem list"
    return cert, ""


def _cex(cex: Any) -> str:
    if isinstance(cex, dict) and cex:
        return ", ".join(f"{k} = {v}" for k, v in cex.items())
    return "none recorded"


def _scope(t: dict[str, Any]) -> str:
    sc = t.get("scope")
    if isinstance(sc, dict) and sc.get("kind"):
        detail = f" ({sc['detail']})" if sc.get("detail") else ""
        return f"scope: {sc['kind']}{detail}"
    return "scope: not recorded in this certificate"


def certificate_rows(
    cert: dict[str, Any] | None, where: str, claim_ids: Sequence[str] = PROOF_CLAIMS
) -> list[dict[str, Any]]:
    """Claim rows from a certificate: refutations (with counterexamples) and corrections.

    For each claim: one row per theorem whose ``refutes.claim`` is the claim
    (``refuted`` when its verdict is REFUTED, else ``not decided``), then one
    row for the theorem of :data:`CORRECTED_BY` (``proved`` when PROVED, with
    its scope).  ``cert is None``: one ``not decided`` row per claim saying so.
    """
    rows: list[dict[str, Any]] = []
    how = f"run `conserve-verified verify --json {where}`"
    for cid in claim_ids:
        if cert is None:
            rows.append(proof_row(cid, "proof certificate", "not decided", note=f"{where}; {how}"))
            continue
        theorems = [t for t in cert["theorems"] if isinstance(t, dict)]
        refuting = [t for t in theorems if (t.get("refutes") or {}).get("claim") == cid]
        for t in refuting:
            status = str(t.get("verdict", "?"))
            q = f"{t.get('id')}: {t.get('name', '')}"
            if status == "REFUTED":
                rows.append(
                    proof_row(
                        cid, q, "refuted", note=f"counterexample: {_cex(t.get('counterexample'))}"
                    )
                )
            else:
                why = f"engine verdict {status}" + (f": {t['reason']}" if t.get("reason") else "")
                rows.append(proof_row(cid, q, "not decided", note=why))
        fix = CORRECTED_BY.get(cid)
        fixed = [t for t in theorems if t.get("id") == fix]
        for t in fixed:
            status = str(t.get("verdict", "?"))
            q = f"{t.get('id')} (corrected statement): {t.get('statement', t.get('name', ''))}"
            verdict = "proved" if status == "PROVED" else "not decided"
            rows.append(proof_row(cid, q, verdict, note=f"engine verdict {status}; {_scope(t)}"))
        if not refuting and not fixed:
            rows.append(
                proof_row(
                    cid,
                    "proof certificate",
                    "not decided",
                    note=f"{where} has no theorem refuting or correcting claim {cid}",
                )
            )
    return rows


# --------------------------------------------------------------------------- claims table


def _missing_rows(
    rows: list[dict[str, Any]],
    discovery: Discovery | None,
    measured: dict[str, list[str]],
    smoke_only: bool,
) -> list[dict[str, Any]]:
    """A row for each claim without one, saying why (never "no records yet")."""
    have = {r["claim"] for r in rows}
    out = []
    for c in load_claims()["claims"]:
        cid = c["id"]
        if cid in have:
            continue
        speakers: list[str] = []
        if discovery is not None:
            speakers = sorted(e.name for e in discovery.experiments.values() if cid in e.claims)
        what = c.get("statement") or c.get("statements") or c.get("metric", "")
        if isinstance(what, list):
            what = "; ".join(what)
        ran = [s for s in speakers if s in measured]
        if ran:
            why = "smoke profile" if smoke_only else "the grid gives no estimate"
            verdict, note = GRID_TOO_SMALL, f"{GRID_TOO_SMALL}: {why} (records of {', '.join(ran)})"
        elif speakers:
            verdict = GRID_TOO_SMALL
            note = f"{GRID_TOO_SMALL}: {', '.join(speakers)} not run into this store"
        else:
            verdict, note = "not measured", "no experiment measures it"
        row = proof_row(cid, str(what), "not decided", note=note, method="")
        row.update(verdict=verdict, compare="–", data="–")
        if speakers:
            datas = sorted({d for ds in measured.values() for d in ds})
            on = f" --data {datas[0]}" if len(datas) == 1 else ""
            row["command"] = f"conserve-verified run {' '.join(speakers)} --profile quick{on}"
        out.append(row)
    return out


def _claims_section(rows: list[dict[str, Any]]) -> str:
    order = {c["id"]: i for i, c in enumerate(load_claims()["claims"])}
    table = []
    for r in sorted(rows, key=lambda r: order.get(r["claim"], len(order))):
        effect = "–" if r.get("effect_size") is None else f"{r['effect_size']:.2f}"
        p = r.get("p_holm") if r.get("p_holm") is not None else r.get("p_value")
        table.append(
            [
                r["claim"],
                r.get("data", "–"),
                r["quantity"],
                r.get("compare", "effect"),
                fmt_num(r.get("paper"), _digits(r.get("paper"))),
                _ours(r),
                fmt_p(p),
                effect,
                f"**{r['verdict']}**",
                r.get("note", ""),
            ]
        )
    text = [
        "## Claims: paper vs reproduced",
        "",
        "Ours: mean [95% CI] (n = independent units, e.g. seeds). p: the row's test "
        "(Holm-adjusted within the claim and dataset). Effect: the row's standardised effect "
        "size (method in the note where not Welch/Hedges' g). " + VERDICT_RULES,
        "",
        markdown_table(
            [
                "claim",
                "data",
                "quantity",
                "compare",
                "paper",
                "ours",
                "p",
                "effect",
                "verdict",
                "note",
            ],
            table,
        ),
    ]
    counts = {v: sum(1 for r in rows if r["verdict"] == v) for v in VERDICTS}
    text += [
        "",
        "Verdict counts: " + ", ".join(f"{k}: {v}" for k, v in counts.items() if v),
        "",
    ]
    return "\n".join(text)


def _headline(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The first row with a verdict other than *grid too small*, else the first row."""
    return next((r for r in rows if r["verdict"] != GRID_TOO_SMALL), rows[0])


def summary_table(rows: list[dict[str, Any]], out: pathlib.Path | None = None) -> str:
    """One line per (claim, dataset): verdict counts, the headline row and the command.

    The command reruns the row's experiment into the store (then ``report``
    rebuilds the table); proof rows name the ``verify`` command.
    """
    order = {c["id"]: i for i, c in enumerate(load_claims()["claims"])}
    groups: dict[tuple[int, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        key = (order.get(r["claim"], len(order)), r["claim"], str(r.get("data", "–")))
        groups.setdefault(key, []).append(r)
    groups = dict(sorted(groups.items()))
    table = []
    suffix = "" if out is None else f" --out {out}"
    for (_, cid, data), family in groups.items():
        counts = {v: sum(1 for r in family if r["verdict"] == v) for v in VERDICTS}
        head = _headline(family)
        ours = _ours(head)
        paper = fmt_num(head.get("paper"), _digits(head.get("paper")))
        cmds = sorted({str(r.get("command")) for r in family if r.get("command")})
        if head.get("compare") in ("proof", "–"):
            headline = f"{head['quantity']} → **{head['verdict']}** ({head.get('note', '')})"
        else:
            headline = f"{head['quantity']}: ours {ours} vs paper {paper} → **{head['verdict']}**"
        table.append(
            [
                cid,
                data,
                ", ".join(f"{k}: {v}" for k, v in counts.items() if v),
                headline,
                "; ".join(f"`{c}{suffix if 'verify' not in c else ''}`" for c in cmds) or "–",
            ]
        )
    return "\n".join(
        [
            "## Verdicts by claim",
            "",
            "Per claim and dataset: how many rows of the claims table below got each verdict, "
            "the headline row (the first row with a verdict), and the command that "
            "recomputes the rows (then `conserve-verified report`).",
            "",
            markdown_table(["claim", "data", "rows by verdict", "headline", "command"], table),
            "",
        ]
    )


def _header(
    ok: list[dict[str, Any]],
    failed: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    cert: dict[str, Any] | None,
    cert_path: pathlib.Path,
    cert_problem: str,
) -> tuple[list[str], bool]:
    profiles = sorted({str(r.get("profile")) for r in ok})
    smoke_only = profiles == ["smoke"]
    data = group_by(ok, lambda r: r["data"])
    per_data = "; ".join(f"{_label(d)}: {len(v)} cells" for d, v in data.items()) or "none"
    seeds: dict[str, set[Any]] = {}
    for r in ok:
        seeds.setdefault(r["experiment"], set()).add(r["config"].get("seed"))
    counts = sorted(len(v) for v in seeds.values())
    seed_txt = (
        "–"
        if not counts
        else (f"{counts[0]}" if counts[0] == counts[-1] else f"{counts[0]}–{counts[-1]}")
    )
    few = sorted(f"{e} ({len(v)})" for e, v in seeds.items() if len(v) < 3)
    if few and not smoke_only:
        seed_txt += f"; fewer than 3: {', '.join(few)}"
    wall = sum(float(e.get("seconds") or 0) for e in runs)
    cpu = sum(float(r.get("seconds") or 0) for r in ok)
    threads = sorted(
        {int(t) for r in ok if (t := (r.get("runtime") or {}).get("torch_threads")) is not None}
    )
    head = ["# conserve_verified: experiment report", ""]
    if smoke_only:
        head += [
            "**Smoke run: not evidence.** Every record comes from the `smoke` profile (one "
            "seed per arm), so no claim can get a statistical verdict; run "
            "`conserve-verified run all --profile quick` for evidence.",
            "",
        ]
    if cert is not None:
        cert_txt = (
            f"`{cert_path}` (created {cert.get('created', '?')}, ok: "
            f"{str(cert.get('ok', '?')).lower()}, {len(cert['theorems'])} theorems)"
        )
    else:
        cert_txt = f"none ({cert_problem})"
    head += [
        f"- profile(s): {', '.join(profiles) or 'none'}",
        f"- dataset(s): {per_data}",
        f"- seeds per experiment: {seed_txt}",
        f"- cells: {len(ok)} finished, {len(failed)} failed",
        f"- run time: {wall:.0f} s wall over {len(runs)} run command(s) "
        f"({cpu:.0f} s of cell time; torch threads per cell: "
        f"{', '.join(map(str, threads)) or 'not recorded'})",
        f"- certificate: {cert_txt}",
        "",
    ]
    if runs:
        head += ["Commands that produced these records:", ""]
        seen: list[str] = []
        for e in runs:
            cmd = str(e.get("command", ""))
            if cmd and cmd not in seen:
                seen.append(cmd)
        head += [f"- `{c}`" for c in seen] + [""]
    return head, smoke_only


def build_report(
    out_dir: pathlib.Path | str,
    discovery: Discovery | None = None,
    certificate: pathlib.Path | str | None = None,
    *,
    require_records: bool = False,
) -> ReportResult:
    """Write ``report.md`` and ``report.html`` for the records under ``out_dir``.

    ``certificate`` defaults to ``<out_dir>/certificate.json``.  With
    ``require_records`` a missing or empty store raises :class:`NoRecords`.
    """
    out = pathlib.Path(out_dir)
    store = ResultStore(out)
    if require_records and (not out.is_dir() or not store.records(status=None)):
        raise NoRecords(
            f"no records under {store.root}: run `conserve-verified run all --out {out}` first"
            if out.is_dir()
            else f"no folder {out}: run `conserve-verified run all --out {out}` first"
        )
    out.mkdir(parents=True, exist_ok=True)
    ok = store.records(status="ok")
    failed = store.records(status="error")
    cert_path = pathlib.Path(certificate) if certificate is not None else out / "certificate.json"
    cert, cert_problem = load_certificate(cert_path)
    problems: list[str] = list(store.quarantine_messages())
    if cert is None and cert_path.exists():
        problems.append(cert_problem)
    sections: list[str] = []
    rows: list[dict[str, Any]] = []
    experiments = discovery.experiments if discovery is not None else {}
    if discovery is not None:
        problems += [
            f"experiment module {m!r} not loaded: {e}" for m, e in discovery.errors.items()
        ]
    measured: dict[str, list[str]] = {}
    groups = group_by(ok, lambda r: (r["experiment"], r["data"]))
    for (name, data), recs in groups.items():
        measured.setdefault(name, []).append(data)
        exp = experiments.get(name)
        if exp is None:
            problems.append(f"records of unknown experiment {name!r} ({len(recs)}) not reported")
            continue
        label = str(getattr(exp.module, "DATA_LABEL", "") or "{data}").format(data=_label(data))
        try:
            section = exp.report(recs, out)
            sections.append(f"{section}\n\n*dataset: {label}; {len(recs)} records*\n")
        except Exception as exc:
            tb = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            problems.append(f"report() of {name!r} on {label!r} failed: {tb}")
        fn = getattr(exp.module, "claim_rows", None)
        if callable(fn):
            try:
                got = [dict(r, data=r.get("data") or label) for r in fn(recs)]
            except Exception as exc:
                tb = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                problems.append(f"claim_rows() of {name!r} on {label!r} failed: {tb}")
            else:
                profile = max(
                    sorted({str(r.get("profile")) for r in recs}),
                    key=lambda p: sum(1 for r in recs if r.get("profile") == p),
                )
                n_seeds = len({r["config"].get("seed") for r in recs})
                grid_seeds = len(exp.grids.get(profile, {}).get("seed", []))
                cut = f" --seeds {n_seeds}" if 0 < n_seeds < grid_seeds else ""
                cmd = f"conserve-verified run {name} --profile {profile}{cut} --data {data}"
                got = [dict(r, experiment=name, command=cmd) for r in got]
                for _, family in group_by(got, lambda r: r["data"]).items():
                    rows += holm_adjust(family)
    rows += [
        dict(r, data="proof", command=f"conserve-verified verify --json {cert_path}")
        for r in certificate_rows(cert, str(cert_path))
    ]
    runs = store.runs()
    head, smoke_only = _header(ok, failed, runs, cert, cert_path, cert_problem)
    if failed:
        head += ["## Failed cells", ""]
        for r in failed:
            last = (r.get("error") or "").strip().splitlines()[-1:] or ["?"]
            head.append(f"- `{r['experiment']}` {r['config']}: {last[0]}")
        head.append("")
    if problems:
        head += ["## Problems", ""] + [f"- {p}" for p in problems] + [""]
    rows += _missing_rows(rows, discovery, measured, smoke_only)
    md = (
        "\n".join(head)
        + "\n"
        + summary_table(rows, out)
        + "\n"
        + _claims_section(rows)
        + "\n"
        + "\n".join(sections)
    )
    md_path, html_path = out / "report.md", out / "report.html"
    atomic_write_text(md_path, md)
    atomic_write_text(html_path, markdown_to_html(md, "conserve_verified report"))
    return ReportResult(
        md_path,
        html_path,
        problems + [f"failed cell: {r['experiment']}" for r in failed],
        rows,
    )


# --------------------------------------------------------------------------- HTML

_STYLE = (
    "body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:.25em .5em}"
    "th{background:#f4f4f4}img{max-width:100%}"
)


def markdown_to_html(md: str, title: str) -> str:
    """A standalone HTML page of ``md`` rendered by markdown-it-py (CommonMark + tables).

    Raw HTML in ``md`` is disabled, so ``<``, ``>`` and ``&`` in text are always
    escaped (a record can never inject markup); unsafe link schemes
    (``javascript:`` ...) are not linked.  ``title`` is escaped too.
    """
    from markdown_it import MarkdownIt

    renderer = MarkdownIt("commonmark", {"html": False}).enable("table")
    body = renderer.render(md)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
        + body
        + "</body></html>\n"
    )
