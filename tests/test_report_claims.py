"""The report joins experiments and the proof certificate: every claim gets a verdict row."""

from __future__ import annotations

import json
import pathlib
from types import ModuleType
from typing import Any

import pytest

from conserve_verified.cli import main
from conserve_verified.runner import ResultStore, validate_module
from conserve_verified.runner.claims import claim_ids
from conserve_verified.runner.discovery import Discovery
from conserve_verified.runner.report import build_report, certificate_rows
from conserve_verified.runner.spec import config_key
from conserve_verified.runner.store import quarantine_message
from conserve_verified.runner.verdict import GRID_TOO_SMALL, difference_row


def _toy_module() -> ModuleType:
    m = ModuleType("experiments.toyclaims")
    m.NAME = "toyclaims"  # type: ignore[attr-defined]
    m.TITLE = "toy claims"  # type: ignore[attr-defined]
    m.CLAIMS = ("E1", "E3", "S")  # type: ignore[attr-defined]
    m.GRIDS = {p: {"arm": ["a", "b"], "seed": [0, 1, 2]} for p in ("smoke", "quick", "paper")}  # type: ignore[attr-defined]
    m.run_cell = lambda c, ctx: {}  # type: ignore[attr-defined]
    m.report = lambda recs, out: "## toy claims\n"  # type: ignore[attr-defined]

    def claim_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        a = [r["metrics"]["y"] for r in records if r["config"]["arm"] == "a"]
        b = [r["metrics"]["y"] for r in records if r["config"]["arm"] == "b"]
        return [
            difference_row("E1", "advantage, first", 40.0, a, b),
            difference_row("E1", "advantage, second", 40.0, a, b),
        ]

    m.claim_rows = claim_rows  # type: ignore[attr-defined]
    return m


def _discovery(tmp: pathlib.Path) -> Discovery:
    exp = validate_module(_toy_module(), claim_ids())
    return Discovery(tmp, experiments={exp.name: exp})


def _store(out: pathlib.Path, profile: str, data: str = "digits", seeds: int = 3) -> None:
    store = ResultStore(out)
    for arm, base in (("a", 80.0), ("b", 40.0)):
        for seed in range(seeds):
            config = {"arm": arm, "seed": seed}
            store.write(
                {
                    "experiment": "toyclaims",
                    "config": config,
                    "data": data,
                    "profile": profile,
                    "key": config_key(config, data),
                    "status": "ok",
                    "metrics": {"y": base + seed * 0.5 + (1.0 if arm == "a" else -0.3) * seed},
                    "error": None,
                    "seconds": 0.1,
                    "runtime": {"torch_threads": 1, "torch": "x", "host": "h", "python": "3"},
                }
            )


CERT = {
    "format": "conserve_verified.certificate/1",
    "created": "2026-12-01T08:00:00+00:00",
    "ok": True,
    "theorems": [
        {
            "id": "T5a",
            "name": "paper claim B is false",
            "verdict": "REFUTED",
            "counterexample": {"r": "1", "rho": "1/2", "c": "0"},
            "refutes": {"claim": "B", "text": "conserved noise energy is strictly less"},
            "statement": "...",
        },
        {
            "id": "T5b",
            "name": "conservation can increase the noise energy",
            "verdict": "REFUTED",
            "counterexample": {"s1": "1", "s2": "0", "n1": "-5/2", "n2": "0"},
            "refutes": {"claim": "B", "text": "..."},
            "statement": "...",
        },
        {
            "id": "T5",
            "name": "noise reduction, corrected",
            "verdict": "PROVED",
            "counterexample": None,
            "refutes": None,
            "statement": "Conservation strictly reduces the noise energy iff ...",
            "scope": {"kind": "general", "detail": "every dimension via invariants (r, rho, c)"},
        },
    ],
}


def test_claim_b_rows_come_from_the_certificate_with_counterexamples(
    tmp_path: pathlib.Path,
) -> None:
    rows = certificate_rows(CERT, "cert.json")
    assert [(r["quantity"].split(":")[0], r["verdict"]) for r in rows] == [
        ("T5a", "refuted"),
        ("T5b", "refuted"),
        ("T5 (corrected statement)", "proved"),
    ]
    assert "r = 1, rho = 1/2, c = 0" in rows[0]["note"]
    assert "n1 = -5/2" in rows[1]["note"]
    assert "scope: general (every dimension" in rows[2]["note"]


def test_without_certificate_claim_b_says_so(tmp_path: pathlib.Path) -> None:
    rows = certificate_rows(None, str(tmp_path / "certificate.json"))
    assert len(rows) == 1 and rows[0]["verdict"] == "not decided"
    assert "certificate.json" in rows[0]["note"] and "verify --json" in rows[0]["note"]


def test_undecided_refutation_is_not_called_refuted() -> None:
    cert = {"theorems": [dict(CERT["theorems"][0], verdict="UNKNOWN", reason="timeout")]}  # type: ignore[arg-type]
    rows = certificate_rows(cert, "c.json")
    assert rows[0]["verdict"] == "not decided" and "UNKNOWN: timeout" in rows[0]["note"]


def test_report_has_a_row_for_every_claim_and_names_the_certificate(
    tmp_path: pathlib.Path,
) -> None:
    out = tmp_path / "out"
    _store(out, "quick")
    (out / "certificate.json").write_text(json.dumps(CERT))
    res = build_report(out, _discovery(tmp_path))
    md = res.markdown.read_text()
    claimed = {r["claim"] for r in res.rows}
    table = md.split("## Claims: paper vs reproduced", 1)[1]
    for cid in claim_ids():
        assert f"\n| {cid} |" in table, cid
    assert {"E1", "B"} <= claimed
    assert "created 2026-12-01T08:00:00+00:00, ok: true, 3 theorems" in md
    assert "not evidence" not in md
    # Holm over the two E1 rows of one dataset
    e1 = [r for r in res.rows if r["claim"] == "E1"]
    assert all(r["p_holm"] == pytest.approx(min(1.0, 2 * r["p_value"])) for r in e1)
    # E3 and S are claimed by the experiment, which gives them no rows: grid too small
    assert f"**{GRID_TOO_SMALL}** | {GRID_TOO_SMALL}: the grid gives no estimate" in table
    # a claim no experiment speaks to is honestly not measured
    assert "| M3 |" in table


def test_smoke_only_store_is_marked_not_evidence(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "out"
    _store(out, "smoke", seeds=1)
    md = build_report(out, _discovery(tmp_path)).markdown.read_text()
    assert "**Smoke run: not evidence.**" in md
    assert f"{GRID_TOO_SMALL}: smoke profile" in md
    assert "no certificate at" in md


def test_fashion_mnist_records_are_labelled_fashion_mnist(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "out"
    _store(out, "quick", data="fashion-mnist")
    res = build_report(out, _discovery(tmp_path))
    md = res.markdown.read_text()
    assert "Fashion-MNIST: 6 cells" in md and "*dataset: Fashion-MNIST; 6 records*" in md
    assert {r["data"] for r in res.rows if r["claim"] == "E1"} == {"Fashion-MNIST"}
    assert "| mnist |" not in md


def test_corrupt_record_is_quarantined_and_named(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "out"
    _store(out, "quick")
    bad = out / "records" / "toyclaims" / "0000000000000000.json"
    bad.write_text('{"experiment": "toyclaims", "conf')
    res = build_report(out, _discovery(tmp_path))
    dest = out / "quarantine" / "toyclaims" / bad.name
    assert dest.is_file() and not bad.exists()
    msg = [p for p in res.problems if p.startswith("corrupt record")]
    assert len(msg) == 1 and msg[0].startswith(quarantine_message(bad, dest, "")[:-2])


def test_report_cli_on_missing_or_empty_folder_exits_2_with_one_line(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--out", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no folder" in err
    (tmp_path / "empty").mkdir()
    assert main(["report", "--out", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no records under" in err


def test_summary_has_one_line_per_claim_and_dataset_with_its_command(
    tmp_path: pathlib.Path,
) -> None:
    out = tmp_path / "out"
    _store(out, "quick")
    (out / "certificate.json").write_text(json.dumps(CERT))
    md = build_report(out, _discovery(tmp_path)).markdown.read_text()
    summary = md.split("## Verdicts by claim", 1)[1].split("## Claims", 1)[0]
    lines = [ln for ln in summary.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    assert [ln.split(" | ")[0][2:] for ln in lines] == [
        "E1", "E2", "E3", "E4", "E5", "B", "M1", "M2", "M3", "S", "G", "A",
    ]  # fmt: skip
    e1 = lines[0]
    assert "reproduced: 2" in e1 and "ours 41.3 [37.7, 44.9] (n=3) vs paper 40.0" in e1
    assert f"`conserve-verified run toyclaims --profile quick --data digits --out {out}`" in e1
    assert "refuted: 2, proved: 1" in lines[5] and "verify --json" in lines[5]


def test_data_label_of_the_experiment_overrides_the_runs_dataset(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "out"
    _store(out, "quick")
    disc = _discovery(tmp_path)
    disc.experiments["toyclaims"].module.DATA_LABEL = "simulator ({data})"  # type: ignore[attr-defined]
    res = build_report(out, disc)
    from conserve_verified.data import dataset_label

    assert {r["data"] for r in res.rows if r["claim"] == "E1"} == {
        f"simulator ({dataset_label('digits')})"
    }
