"""Tests of the report pieces: verdict rows, Markdown tables, the Markdown-to-HTML subset."""

from __future__ import annotations

import pytest

from conserve_verified.runner.report import markdown_to_html
from conserve_verified.runner.stats import mean_diff_ci
from conserve_verified.runner.tables import fmt_ci, fmt_p, markdown_table
from conserve_verified.runner.verdict import GRID_TOO_SMALL, difference_row, level_row

A = [80.0, 82.0, 78.0, 81.0, 79.0]
B = [40.0, 38.0, 41.0, 39.0, 42.0]


def test_difference_row_reproduced_when_paper_value_in_ci() -> None:
    ci = mean_diff_ci(A, B)
    row = difference_row("E1", "q", ci.mean, A, B)
    assert row["verdict"] == "reproduced"
    assert row["low"] < row["mean"] < row["high"] and row["n"] == 5
    assert row["p_value"] < 1e-4 and row["effect_size"] > 5


def test_difference_row_larger_when_direction_but_paper_size_below_ci() -> None:
    assert difference_row("E1", "q", 10.0, A, B)["verdict"] == "larger"


def test_difference_row_reversed_for_opposite_sign_not_reproduced_for_null() -> None:
    assert difference_row("E1", "q", -40.0, A, B)["verdict"] == "reversed"
    same = [1.0, 2.0, 3.0]
    assert difference_row("E3", "q", 45.0, same, same)["verdict"] == "not reproduced"


def test_rows_with_one_run_are_grid_too_small() -> None:
    assert difference_row("E1", "q", 1.0, [1.0], [2.0])["verdict"] == GRID_TOO_SMALL
    assert level_row("E2", "q", 93.3, [90.0])["verdict"] == GRID_TOO_SMALL


def test_level_row_against_paper_summary_statistics() -> None:
    row = level_row("E1", "q", 80.0, A, 1.0, 5)
    assert row["verdict"] == "reproduced" and row["p_value"] > 0.5
    far = level_row("E1", "q", 35.1, A, 1.1, 5)
    assert far["verdict"] == "larger" and far["p_value"] < 1e-4 and far["effect_size"] > 0


def test_fmt_helpers() -> None:
    assert fmt_ci([1.0]) == "1.0 (n=1)"
    assert fmt_ci([1.0, 3.0]).startswith("2.0 [") and fmt_ci([1.0, 3.0]).endswith("(n=2)")
    assert fmt_p(1e-9) == "<1e-4" and fmt_p(None) == "–" and fmt_p(0.0312) == "0.031"
    assert markdown_table(["a", "b"], [[1, 2]]).splitlines() == [
        "| a | b |",
        "|---|---|",
        "| 1 | 2 |",
    ]


def test_markdown_to_html_tables_headings_images_and_escaping() -> None:
    md = (
        "# Title\n\ntext with **bold** and <script>\n\n"
        "| a | b |\n|---|---|\n| 1 | `x` |\n\n![plot](p.png)\n- item"
    )
    html = markdown_to_html(md, "t <&>")
    flat = html.replace("\n", "")
    assert "<h1>Title</h1>" in html and "<title>t &lt;&amp;&gt;</title>" in html
    assert "<strong>bold</strong>" in html and "&lt;script&gt;" in html and "<script>" not in html
    assert "<th>a</th><th>b</th>" in flat and "<td>1</td><td><code>x</code></td>" in flat
    assert '<img src="p.png" alt="plot" />' in html and "<li>item</li>" in html


@pytest.mark.parametrize(
    "evil",
    [
        "<img src=x onerror=alert(1)>",
        "| <b>cell</b> |\n|---|\n| <i>x</i> |",
        "[click](javascript:alert(1))",
        "`<code>` & <!-- comment -->",
    ],
)
def test_markdown_to_html_never_passes_raw_html_through(evil: str) -> None:
    html = markdown_to_html(evil, "t")
    body = html.split("<body>", 1)[1]
    for tag in ("<img src=x", "<b>", "<i>", "<!--", 'href="javascript'):
        assert tag not in body
    assert ("&lt;" in body) == ("<" in evil)


@pytest.mark.parametrize("bad", [[], [float("nan"), 1.0]])
def test_difference_row_rejects_bad_samples(bad: list[float]) -> None:
    if not bad:
        assert difference_row("E1", "q", 1.0, bad, A)["verdict"] == GRID_TOO_SMALL
    else:
        with pytest.raises(ValueError, match="NaN"):
            difference_row("E1", "q", 1.0, bad, A)
