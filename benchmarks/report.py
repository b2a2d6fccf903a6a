"""Markdown tables of a benchmark result (the output of :func:`benchmarks.run`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["to_markdown"]

#: Targets of the fast path and the pipeline wrapper (ratios; lower is better).
CPU_FWD_BWD_TARGET = 1.0
MLP_OVERHEAD_TARGET = 1.05


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def _ms(row: dict[str, Any], key: str) -> float:
    return float(row["timings"][key]["median_ms"])


def _operator(sec: dict[str, Any]) -> list[str]:
    rows = sec["rows"]
    out = ["## Operator: `conserve` vs `rms_norm`, `normalize` and a copy", ""]
    native = sec.get("native")
    if native is not None:
        state = "in use" if native["active"] else f"not in use ({native['reason']})"
        out += [
            f"Native kernel: {state}; flags `{' '.join(native['flags'])}`.  Column "
            '"torch kernels": the same fast path on torch\'s kernels (native kernel disabled).',
            "",
        ]
    out += ["Forward (ms, median of blocks; ratio = conserve / faster peer):", ""]
    out += _table(
        [
            "device",
            "dtype",
            "batch × features",
            "conserve",
            "torch kernels",
            "reference",
            "rms_norm",
            "normalize",
            "copy",
            "conserve / peer",
            "torch kernels / peer",
            "bandwidth / copy",
        ],
        [
            [
                r["device"],
                r["dtype"],
                f"{r['batch']} × {r['features']}",
                _ms(r, "conserve.fwd"),
                _ms(r, "conserve_torch.fwd"),
                _ms(r, "conserve_reference.fwd"),
                _ms(r, "rms_norm.fwd"),
                _ms(r, "normalize.fwd"),
                _ms(r, "copy.fwd"),
                r["ratios"]["fwd_vs_peer"],
                r["ratios"]["fwd_torch_vs_peer"],
                r["ratios"]["fwd_bandwidth_vs_copy"],
            ]
            for r in rows
        ],
    )
    out += ["", "Forward + backward (ms; target: conserve / peer ≤ 1.0 on CPU):", ""]
    out += _table(
        [
            "device",
            "dtype",
            "batch × features",
            "conserve",
            "reference",
            "rms_norm",
            "normalize",
            "conserve / peer",
            "reference / conserve",
            "target met",
        ],
        [
            [
                r["device"],
                r["dtype"],
                f"{r['batch']} × {r['features']}",
                _ms(r, "conserve.fwd_bwd"),
                _ms(r, "conserve_reference.fwd_bwd"),
                _ms(r, "rms_norm.fwd_bwd"),
                _ms(r, "normalize.fwd_bwd"),
                r["ratios"]["fwd_bwd_vs_peer"],
                r["ratios"]["fused_speedup_fwd_bwd"],
                "yes" if r["ratios"]["fwd_bwd_vs_peer"] <= CPU_FWD_BWD_TARGET else "no",
            ]
            for r in rows
        ],
    )
    out += [
        "",
        "Compiled (`torch.compile(fullgraph=True)`, backend "
        f"`{rows[0].get('compile_backend', 'inductor')}`; ms; ratio = compiled conserve / faster "
        "compiled peer):",
        "",
    ]
    out += _table(
        [
            "device",
            "dtype",
            "batch × features",
            "conserve fwd",
            "rms_norm fwd",
            "normalize fwd",
            "fwd ratio",
            "conserve fwd+bwd",
            "rms_norm fwd+bwd",
            "normalize fwd+bwd",
            "fwd+bwd ratio",
        ],
        [
            [
                r["device"],
                r["dtype"],
                f"{r['batch']} × {r['features']}",
                _ms(r, "conserve_compiled.fwd"),
                _ms(r, "rms_norm_compiled.fwd"),
                _ms(r, "normalize_compiled.fwd"),
                r["ratios"]["compiled_fwd_vs_peer"],
                _ms(r, "conserve_compiled.fwd_bwd"),
                _ms(r, "rms_norm_compiled.fwd_bwd"),
                _ms(r, "normalize_compiled.fwd_bwd"),
                r["ratios"]["compiled_fwd_bwd_vs_peer"],
            ]
            for r in rows
            if "conserve_compiled.fwd" in r["timings"]
        ],
    )
    if not any(r["device"] == "cuda" for r in rows):
        sizes = sec.get("cuda_sizes")
        which = (
            f" ({sizes['batch']} × " + " and × ".join(str(f) for f in sizes["features"]) + ")"
            if sizes
            else ""
        )
        out += [
            "",
            "No CUDA rows in this run (no CUDA device, or `--devices` left it out): the "
            f"GPU rows{which} are not measured here.",
        ]
    return out


def _pipeline(sec: dict[str, Any]) -> list[str]:
    out = ["## Pipeline: `Conserved` vs the same `Pipeline` unconserved", ""]
    rows = []
    for r in sec["rows"]:
        for label, name in (("fwd", "forward"), ("fwd_bwd", "forward + backward")):
            rows.append(
                [
                    r["model"],
                    " × ".join(map(str, r["input_shape"])),
                    name,
                    _ms(r, f"plain.{label}"),
                    _ms(r, f"conserved.{label}"),
                    r["ratios"][f"conserved_vs_plain.{label}"],
                    _ms(r, f"conserved_checks.{label}"),
                    r["ratios"][f"checks_on_vs_plain.{label}"],
                    r["ratios"][f"checks_on_vs_off.{label}"],
                    _ms(r, f"normalized.{label}"),
                    r["ratios"][f"normalize_vs_plain.{label}"],
                ]
            )
    out += _table(
        [
            "model",
            "input",
            "pass",
            "plain ms",
            "conserved ms (checks off)",
            "ratio",
            "conserved ms (checks on)",
            "ratio",
            "checks on / off",
            "plain + F.normalize ms",
            "ratio",
        ],
        rows,
    )
    compiled_rows = [
        [
            r["model"],
            " × ".join(map(str, r["input_shape"])),
            name,
            _ms(r, f"plain_compiled.{label}"),
            _ms(r, f"conserved_compiled.{label}"),
            r["ratios"][f"compiled_conserved_vs_plain.{label}"],
            _ms(r, f"conserved_compiled_checks.{label}"),
            r["ratios"][f"compiled_checks_on_vs_plain.{label}"],
            r["ratios"][f"compiled_checks_on_vs_off.{label}"],
        ]
        for r in sec["rows"]
        for label, name in (("fwd", "forward"), ("fwd_bwd", "forward + backward"))
        if f"conserved_compiled.{label}" in r["timings"]
    ]
    if compiled_rows:
        out += ["", "Compiled (`torch.compile(fullgraph=True)` of the whole model):", ""]
        out += _table(
            [
                "model",
                "input",
                "pass",
                "plain ms",
                "conserved ms (checks off)",
                "ratio",
                "conserved ms (checks on)",
                "ratio",
                "checks on / off",
            ],
            compiled_rows,
        )
    out += [
        "",
        f"Target: MLP ratio with checks off ≤ {MLP_OVERHEAD_TARGET}.  The last column is the "
        "plain pipeline with `F.normalize` at the same boundaries: the cost of torch's own "
        "normalisation there.",
    ]
    return out


def _proofs(sec: dict[str, Any]) -> list[str]:
    out = ["## Proof suite: seconds per theorem", ""]
    out += _table(
        [
            "theorem",
            "theory",
            "scope",
            "backend",
            "verdict (expected)",
            "claim s",
            "mutants",
            "mutants s",
        ],
        [
            [
                r["id"],
                r["theory"],
                r.get("scope", ""),
                r["backend"],
                f"{r['status']} ({r['expected']})",
                r["claim_s"],
                f"{r['mutants_refuted']}/{r['mutants']} refuted",
                r["mutants_s"],
            ]
            for r in sec["rows"]
        ],
    )
    out += [
        "",
        f"{len(sec['rows'])} of {sec['registered']} theorems timed; total {sec['total_s']:.3g} s "
        f"(theory files loaded in {sec['load_s']:.3g} s; timeout {sec['timeout_s']:g} s/claim).",
    ]
    return out


def _propagation(sec: dict[str, Any]) -> list[str]:
    out = ["## Noise propagation: analytic predictor vs Monte Carlo", ""]
    out += _table(
        [
            "model",
            "inputs",
            "MC samples",
            "predict s",
            "Monte Carlo s",
            "speedup",
            "rel. diff (last tap)",
            "max rel. diff",
        ],
        [
            [
                sec["model"],
                sec["inputs"],
                sec["samples"],
                sec["predict_s"],
                sec["monte_carlo_s"],
                sec["speedup"],
                sec["last_tap_relative_difference"],
                sec["max_relative_difference"],
            ]
        ],
    )
    return out


def _iqr(r: dict[str, Any]) -> str:
    return f"{r['median']:.2f} [{r['q1']:.2f}, {r['q3']:.2f}]"


def _paired(sec: dict[str, Any]) -> list[str]:
    feats = sorted({r["features"] for r in sec["eager"]})
    dtypes = list(dict.fromkeys(r["dtype"] for r in sec["eager"]))

    def grid(rows: list[dict[str, Any]]) -> list[str]:
        by = {(r["dtype"], r["features"]): r for r in rows}
        return _table(
            ["dtype", *(f"{n} features" for n in feats)],
            [[d, *(_iqr(by[d, n]) for n in feats)] for d in dtypes],
        )

    checks = sec["checks"]
    shape = " × ".join(map(str, checks["input_shape"]))
    return [
        "## Paired ratios",
        "",
        f"Each comparison timed back to back {sec['pairs']} times (one "
        f"`blocked_autorange(min_run_time={sec['pair_run_time']})` per candidate); "
        "median of the per-pair ratios, interquartile range in brackets.",
        "",
        f"Forward, conserve / the faster of `rms_norm` and `normalize` (batch {sec['batch']}):",
        "",
        *grid(sec["eager"]),
        "",
        "Compiled forward (`torch.compile(fullgraph=True, dynamic=False)`, backend "
        f"`{sec['compile_backend']}`), conserve / the faster compiled peer:",
        "",
        *grid(sec["compiled"]),
        "",
        f"MLP {shape}, inference: checks on / off **{_iqr(checks['checks_on_vs_off'])}**; "
        f"conserved (checks off) / plain {_iqr(checks['conserved_vs_plain'])}.",
    ]


def _compiled_forms(sec: dict[str, Any]) -> list[str]:
    forms = sec["forms"]
    return [
        "## Compiled forms of the forward",
        "",
        f"Each form under `torch.compile(fullgraph=True, dynamic=False)` (backend "
        f"`{sec['compile_backend']}`) / compiled `rms_norm`, batch {sec['batch']}, "
        f"{sec['pairs']} back-to-back pairs (median [interquartile range]). `operator` is the "
        "library; `fused` is the formula inductor fuses (no check), `fused_assert` adds the safe-"
        "range test as an in-kernel assert (`RuntimeError`, no fallback), `fused_check_op` adds "
        "an opaque op that raises the typed error or writes the fallback "
        "(`benchmarks/compiled_forms.py`).",
        "",
        *_table(
            ["dtype", "features", *(f"`{f}`" for f in forms)],
            [[r["dtype"], r["features"], *(_iqr(r[f]) for f in forms)] for r in sec["rows"]],
        ),
    ]


def _hypothesis(sec: dict[str, Any]) -> list[str]:
    out = [f"## Hypothesis: examples per second (`{sec['file']}`)", ""]
    out += _table(
        ["property test", "examples", "seconds", "examples / s"],
        [[r["test"], r["examples"], r["seconds"], r["examples_per_s"]] for r in sec["rows"]],
    )
    return out


_SECTIONS = {
    "operator": _operator,
    "pipeline": _pipeline,
    "paired": _paired,
    "compiled_forms": _compiled_forms,
    "proofs": _proofs,
    "propagation": _propagation,
    "hypothesis": _hypothesis,
}


def to_markdown(result: dict[str, Any]) -> str:
    """Markdown report: machine line, then one table per section present in ``result``."""
    m = result["machine"]
    p = result["profile"]
    lines = [
        "# Benchmarks",
        "",
        f"Profile `{p['name']}`; {m['processor']}, {m['cpu_capability']}, "
        f"torch {m['torch']}, {m['threads']} threads; CUDA: {m['cuda'] or 'none'}; "
        f"load average {m['load_average_before']} before, {m.get('load_average_after')} after. "
        f"Each time is the fastest of {p['rounds']} interleaved rounds of "
        f"`blocked_autorange(min_run_time={p['min_run_time']})`.",
    ]
    for name, render in _SECTIONS.items():
        if name in result["sections"]:
            lines += ["", *render(result["sections"][name])]
    return "\n".join(lines) + "\n"
