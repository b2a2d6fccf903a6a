"""Unit tests of the page generators (no Sphinx build; see ``test_docs_build.py``)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import docutils.core
import pytest

from conserve_verified.docsgen import (
    _rst,
    check_certificate,
    markdown_to_rst,
    public_modules,
    sync_tree,
)
from conserve_verified.docsgen._benchmarks import BENCHMARK_RESULTS, benchmark_page
from conserve_verified.docsgen._claims import describe_figure, load_claims, render_claims_table
from conserve_verified.docsgen._paths import repo_root
from conserve_verified.errors import InvalidArgument


def _render(rst: str) -> tuple[str, str]:
    """Plain text of ``rst`` rendered by docutils, and its warnings (level >= 2)."""
    stream = io.StringIO()
    text = docutils.core.publish_string(
        rst,
        writer="pseudoxml",
        settings_overrides={"report_level": 2, "halt_level": 5, "warning_stream": stream},
    ).decode()
    return text, stream.getvalue()


def _paragraph_text(rst: str) -> str:
    doc = docutils.core.publish_doctree(
        rst, settings_overrides={"report_level": 2, "halt_level": 2}
    )
    return doc.astext()


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "a_b c_ *x* **y** `z` |sub| [1]_ <http://x> :role:`v` \\back",
        "||C_E(s + n) - s||^2 < ||n||^2",
        "trailing_",
        "*",
    ],
)
def test_escape_renders_as_the_text_itself(text: str) -> None:
    assert _paragraph_text(_rst.escape(text)) == text


@pytest.mark.parametrize("text", ["C_E(x) and \\ y", "`x` and \\ y", "ends in \\", "*a*"])
def test_inline_literal_renders_as_the_text_itself(text: str) -> None:
    assert _paragraph_text(_rst.inline_literal(text)) == text


def test_list_table_rejects_ragged_rows() -> None:
    with pytest.raises(InvalidArgument, match=r"rows\[1\]"):
        _rst.list_table(["a", "b"], [["1", "2"], ["3"]])


def test_heading_rejects_unknown_level() -> None:
    with pytest.raises(InvalidArgument, match="level=7"):
        _rst.heading("x", 7)


@dataclass(frozen=True)
class _Theorem:
    statement_hash: str


def _certificate(**hashes: str) -> dict[str, object]:
    return {
        "created": "now",
        "theorems": [{"id": k, "statement_hash": v} for k, v in hashes.items()],
    }


def test_check_certificate_accepts_a_matching_certificate() -> None:
    check_certificate(_certificate(T1="a", T2="b"), {"T1": _Theorem("a"), "T2": _Theorem("b")})


@pytest.mark.parametrize(
    ("cert", "message"),
    [
        (_certificate(T1="a"), r"no verdict for registered theorems \['T2'\]"),
        (_certificate(T1="a", T2="b", T3="c"), r"not in the registry \['T3'\]"),
        (_certificate(T1="a", T2="old"), r"statement changed .* \['T2'\]"),
    ],
)
def test_check_certificate_rejects_a_stale_certificate(
    cert: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        check_certificate(cert, {"T1": _Theorem("a"), "T2": _Theorem("b")})


def test_sync_tree_leaves_exactly_the_given_files(tmp_path: Path) -> None:
    (tmp_path / "theorems").mkdir()
    (tmp_path / "theorems" / "T99.rst").write_text("stale")
    (tmp_path / "keep.rst").write_text("old")
    sync_tree(tmp_path, {"keep.rst": "new", "theorems/T1.rst": "t1", "img/a.png": b"\x89PNG"})
    files = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert files == {"keep.rst", "theorems/T1.rst", "img/a.png"}
    assert (tmp_path / "keep.rst").read_text() == "new"
    assert (tmp_path / "img" / "a.png").read_bytes() == b"\x89PNG"


def test_sync_tree_rejects_paths_outside_the_output(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="relative paths"):
        sync_tree(tmp_path, {"../evil.rst": "x"})


def test_markdown_to_rst_renders_a_report_without_warnings(tmp_path: Path) -> None:
    (tmp_path / "plot.png").write_bytes(b"\x89PNG")
    md = """## E1: retention_pct under noise

Ours vs **paper**: p<0.001, `sigma=0.2`, *n*=5 seeds, see [paper](https://arxiv.org/abs/1).
Identifiers like e1_retention and |x| stay text.

| arm | retention (%) | 95% CI |
|---|---:|:---:|
| conserved | 77.4 | [76.1, 78.7] |
| baseline_plain | 35.1 | – |

![retention by sigma](plot.png)
![missing](nope.png)

- first item with `code`
- second item
  continued

```
raw block
```
"""
    rst = markdown_to_rst(md, tmp_path)
    text, warnings = _render(rst)
    assert warnings == ""
    for fragment in ("77.4", "baseline_plain", "e1_retention", "|x|", "p<0.001", "raw block"):
        assert fragment in text
    assert 'uri="plot.png"' in text
    assert "nope.png" in text and "missing from the report" in text


def test_public_modules_cover_the_documented_api() -> None:
    modules = public_modules()
    assert modules[0] == "conserve_verified"
    for name in ("contracts", "testing", "tolerances", "errors", "proof", "runner"):
        assert f"conserve_verified.{name}" in modules
    assert not any(part.startswith("_") for m in modules for part in m.split("."))
    assert "conserve_verified.cli" not in modules


def test_claims_table_lists_every_claim_with_its_figure() -> None:
    claims = load_claims()
    table = render_claims_table(claims, {"B": ["refuted by T5a"]})
    _, warnings = _render(table)
    assert warnings == ""
    for claim in claims["claims"]:
        assert f"**{_rst.escape(claim['id'])}**" in table
    e1 = next(c for c in claims["claims"] if c["id"] == "E1")
    assert "conserved: 77.4 ± 1" in describe_figure(e1)
    assert "refuted by T5a" in table


def test_benchmark_page_renders_the_committed_results_without_warnings() -> None:
    rst = benchmark_page(repo_root())
    text, warnings = _render(rst)
    assert warnings == ""
    assert text.count("<table") >= 3
    results = (repo_root() / BENCHMARK_RESULTS).read_text(encoding="utf-8")
    first_row = next(line for line in results.splitlines() if line.startswith("| cpu |"))
    for cell in first_row.strip("|").split("|")[:4]:
        assert cell.strip() in text


def test_benchmark_page_without_results_says_so(tmp_path: Path) -> None:
    text, warnings = _render(benchmark_page(tmp_path))
    assert warnings == "" and "missing from this checkout" in text


def test_claims_page_documents_the_verdict_taxonomy() -> None:
    table = render_claims_table(load_claims(), {})
    text, warnings = _render(table)
    assert warnings == ""
    for word in ("reproduced", "consistent but inconclusive", "reversed", "refuted", "margin"):
        assert word in text
    assert "grid too small for a verdict" in text


def test_claim_evidence_names_the_test_and_the_dataset_label() -> None:
    from conserve_verified.docsgen._experiments import _claim_row_text
    from conserve_verified.runner.verdict import Estimate, effect_row, holm_adjust

    rows = holm_adjust(
        [
            effect_row("E1", "q1", 40.0, Estimate(41.0, 38.0, 44.0, 0.01, 5, method="paired t")),
            effect_row("E1", "q2", 40.0, Estimate(41.0, 38.0, 44.0, 0.02, 5, method="paired t")),
        ]
    )
    text = _claim_row_text(rows[0], "e1", "Fashion-MNIST")
    assert "Holm p 0.02" in text and "(paired t)" in text and "Fashion-MNIST" in text
    assert "(effect)" in text and "**reproduced**" in text
