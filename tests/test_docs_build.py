"""The documentation builds with ``sphinx-build -W`` and shows what was proved.

One build (a session fixture) serves every test here: it copies ``docs/`` to a
temporary directory and runs ``conserve-verified docs`` there, which runs the
proof engine, so the certificate the pages show is produced inside the test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from conserve_verified.docsgen import load_registry, pages
from conserve_verified.docsgen._claims import load_claims
from conserve_verified.docsgen._paths import docs_dir, repo_root

pytestmark = pytest.mark.docs

_STALE = "theorems/T999_stale.rst"


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _text(path: Path) -> str:
    """Visible text of an HTML page, whitespace collapsed."""
    parser = _Text()
    parser.feed(path.read_text(encoding="utf-8"))
    return re.sub(r"\s+", " ", " ".join(parser.parts))


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("docs")
    src = root / "src"
    shutil.copytree(docs_dir(), src, ignore=shutil.ignore_patterns("_build", "generated"))
    # a page left over from a theorem that is no longer registered
    (src / "generated" / "theorems").mkdir(parents=True)
    (src / "generated" / _STALE).write_text("Stale\n=====\n", encoding="utf-8")
    out = root / "html"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = ["docs", "--source", str(src), "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "conserve_verified", *command],
        capture_output=True,
        text=True,
        env=env,
        cwd=repo_root(),
        check=False,
    )
    assert proc.returncode == 0, f"sphinx-build -W failed:\n{proc.stdout}\n{proc.stderr}"
    return {"src": src, "out": out, "generated": src / "generated"}


def _certificate(built: dict[str, Path]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((built["generated"] / "certificate.json").read_text())
    return data


def test_docs_build_without_warnings(built: dict[str, Path]) -> None:
    """``sphinx-build -W`` succeeded (the fixture asserts it) and wrote the landing page."""
    index = _text(built["out"] / "index.html")
    assert "Claims: the papers" in index and "our verdicts" in index


def test_docs_every_registered_theorem_has_a_page(built: dict[str, Path]) -> None:
    registry = load_registry()
    assert registry, "no theorem is registered"
    summary = _text(built["out"] / "generated" / "theorems" / "index.html")
    for tid, theorem in registry.items():
        page = built["out"] / "generated" / "theorems" / f"{tid}.html"
        assert page.is_file(), f"no page for registered theorem {tid}"
        text = _text(page)
        assert theorem.name in text and theorem.statement_hash in text
        assert tid in summary
    pages_built = {p.stem for p in (built["out"] / "generated" / "theorems").glob("*.html")}
    assert pages_built - {"index"} == set(registry)


def test_docs_verdicts_come_from_this_builds_certificate(built: dict[str, Path]) -> None:
    cert = _certificate(built)
    assert {e["id"] for e in cert["theorems"]} == set(load_registry())
    for entry in cert["theorems"]:
        text = _text(built["out"] / "generated" / "theorems" / f"{entry['id']}.html")
        assert f"{entry['verdict']} in {entry['time_s']:.3f} s" in text
        for mutant in entry["mutants"]:
            assert f"Mutant {mutant['id']}" in text


def test_docs_t5_page_shows_the_refuted_claim_and_counterexample(built: dict[str, Path]) -> None:
    cert = _certificate(built)
    refuting = [e for e in cert["theorems"] if (e.get("refutes") or {}).get("claim") == "B"]
    assert refuting, "no theorem refutes paper claim B"
    assert any(e["id"].startswith("T5") for e in refuting)
    for entry in refuting:
        assert entry["verdict"] == "REFUTED" and entry["counterexample"]
        text = _text(built["out"] / "generated" / "theorems" / f"{entry['id']}.html")
        assert "The refuted paper claim B" in text
        assert entry["refutes"]["text"] in text
        for variable, value in entry["counterexample"].items():
            assert re.search(rf"\b{re.escape(variable)} {re.escape(str(value))}\b", text), (
                f"{entry['id']}: counterexample {variable} = {value} not shown"
            )


def test_docs_claims_table_lists_every_claim(built: dict[str, Path]) -> None:
    text = _text(built["out"] / "index.html")
    for claim in load_claims()["claims"]:
        assert f" {claim['id']} " in f" {text} "
    assert re.search(r"false as stated ?: refuted by T5", text)


def test_docs_generated_pages_are_not_stale(built: dict[str, Path]) -> None:
    """The build's generated files equal a fresh rendering of the registry + its certificate."""
    expected = pages(
        claims=load_claims(),
        certificate=_certificate(built),
        registry=load_registry(),
        report_dir=None if not (repo_root() / "results").is_dir() else repo_root() / "results",
        repo=repo_root(),
    )
    found = {
        p.relative_to(built["generated"]).as_posix()
        for p in built["generated"].rglob("*")
        if p.is_file()
    }
    assert _STALE not in found, "a page of an unregistered theorem survived the build"
    assert not (built["out"] / "generated" / "theorems" / "T999_stale.html").exists()
    theorem_files = {k for k in expected if k.startswith(("theorems/", "sources/"))}
    assert theorem_files <= found
    for rel in sorted(theorem_files):
        content = expected[rel]
        data = content.encode() if isinstance(content, str) else content
        assert (built["generated"] / rel).read_bytes() == data, f"{rel} is stale"


def test_docs_generated_pages_are_not_committed() -> None:
    """Generated pages exist only in builds (``docs/.gitignore``), never in the repository."""
    if shutil.which("git") is None or not (repo_root() / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(
        ["git", "ls-files", "docs/generated"],
        capture_output=True,
        text=True,
        cwd=repo_root(),
        check=True,
    ).stdout
    assert tracked == ""
    assert "generated/" in (docs_dir() / ".gitignore").read_text().splitlines()


def test_docs_benchmarks_page_shows_the_ratio_tables(built: dict[str, Path]) -> None:
    text = _text(built["out"] / "generated" / "benchmarks.html")
    assert "conserve / peer" in text and "target met" in text


# --------------------------------------------------------------------------- offline math


def test_docs_math_renders_offline_from_a_bundled_mathjax(built: dict[str, Path]) -> None:
    """Every page loads MathJax from the built docs themselves, none from a CDN."""
    out = built["out"]
    script = out / "_static" / "mathjax" / "tex-chtml.js"
    assert script.is_file() and script.stat().st_size > 100_000
    fonts = list((out / "_static" / "mathjax").rglob("*.woff"))
    assert fonts, "MathJax's fonts are not bundled"
    index = (out / "index.html").read_text(encoding="utf-8")
    assert re.search(r'<script[^>]+src="_static/mathjax/tex-chtml\.js', index)
    assert r"\(E = \lVert v \rVert^2\)" in index or "math notranslate" in index
    for page in out.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        for src in re.findall(r'<script[^>]+src="([^"]+)"', html):
            assert not re.match(r"(https?:)?//", src), f"{page.name} loads {src} from the network"


# --------------------------------------------------------------------------- tutorial


def test_docs_tutorial_own_model_shows_its_output_from_this_build(built: dict[str, Path]) -> None:
    text = _text(built["out"] / "tutorials" / "own_model.html")
    assert text.count("Output (this build):") >= 6
    for fragment in (
        "torch.Size([4, 10])",
        "dead samples: {'layer1': 0, 'layer2': 0}",
        "not a bare string",
        "both oracles passed",
        "layer1:boundary predicted",
        "layer2:boundary predicted",
        "output moved by",
        "exit code 0",
        "conserved clean",
    ):
        assert fragment in text, fragment
    errors = [float(e) for e in re.findall(r"rel\. error (\d+\.\d+)%", text)]
    assert len(errors) == 2 and max(errors) <= 10.0
    ses = [float(e) for e in re.findall(r"Monte Carlo rel\. SE (\d+\.\d+)%", text)]
    assert len(ses) == 2 and all(0.0 < se < 10.0 for se in ses)


# --------------------------------------------------------------------------- Markdown


_EVIL = """## Heading with <b>tag</b> and $x^2$

Text with <script>alert('inline')</script>, {raw}`<i>role</i>`, .. raw:: html, :math:`y`.

```{raw} html
<script>alert('directive')</script>
```

```{eval-rst}
.. raw:: html

   <script>alert('eval-rst')</script>
```

<div onclick="alert('block')">html block</div>

| arm | value |
|---|---|
| <img src=x onerror=alert(1)> | 1 |
"""


def _sphinx_html(tmp_path: Path, markdown: str) -> str:
    from sphinx.cmd.build import build_main

    from conserve_verified.docsgen import markdown_to_rst

    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text(
        "from conserve_verified.docsgen._markdown import DIRECTIVE, MarkdownSection\n"
        "extensions = ['sphinx.ext.mathjax']\n"
        "def setup(app):\n"
        "    app.add_directive(DIRECTIVE, MarkdownSection, override=True)\n",
        encoding="utf-8",
    )
    (src / "index.rst").write_text("Page\n====\n\n" + markdown_to_rst(markdown), encoding="utf-8")
    out = tmp_path / "out"
    assert build_main(["-b", "html", "-W", "-q", str(src), str(out)]) == 0
    return (out / "index.html").read_text(encoding="utf-8")


def test_markdown_section_cannot_inject_markup(tmp_path: Path) -> None:
    html = _sphinx_html(tmp_path, _EVIL)
    body = html[html.index('<section id="page">') :]
    assert "alert(" in body  # the text is shown ...
    assert "<script>alert" not in body and "<div onclick" not in body  # ... never run
    assert "<img src=x" not in body and "<i>role</i>" not in body and "<b>tag</b>" not in body
    import html as html_lib

    shown = html_lib.unescape(re.sub(r"<[^>]+>", "", body))  # the visible text
    assert shown.count("<script>alert(") == 3  # inline html, {raw} and {eval-rst}: as text
    for fragment in (
        "<div onclick=",
        "html block</div>",
        ".. raw:: html",
        ":math:",
        "<b>tag</b>",
    ):
        assert fragment in shown, fragment


def test_markdown_section_renders_tables_math_and_headings(tmp_path: Path) -> None:
    html = _sphinx_html(tmp_path, _EVIL)
    body = html[html.index('<section id="page">') :]
    assert '<p class="rubric"><strong>Heading with' in body
    assert r"\(x^2\)" in body  # MathJax inline math
    assert "<table" in body and "<th" in body
    assert body.count("<section") == 1  # a report's headings never open sections
