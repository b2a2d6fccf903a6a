"""End-to-end tests of ``conserve-verified run`` and ``report``: SIGKILL, resume, Ray, smoke."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from conserve_verified.cli import main
from conserve_verified.runner import ResultStore, RunContext, discover, run_grid

SLOW = """
import time
NAME = "slow"
TITLE = "slow toy"
CLAIMS = ()
GRIDS = {p: {"x": list(range(6)), "seed": [0, 1]} for p in ("smoke", "quick", "paper")}

def run_cell(config, ctx):
    import torch
    time.sleep(0.4)
    if config["x"] == 5 and ctx.profile == "quick":
        raise ValueError("cell x=5 is broken")
    return {"y": config["x"] + 100 * config["seed"], "r": float(torch.rand(()))}

def report(records, out_dir):
    return "## slow toy\\n\\n" + str(sorted(r["metrics"]["y"] for r in records))
"""

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def slow_root(toy_experiments: Callable[[str, str], pathlib.Path]) -> pathlib.Path:
    return toy_experiments("slow", SLOW)


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", CI="1")
    return subprocess.run(
        [sys.executable, "-m", "conserve_verified", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
        cwd=REPO,
    )


def test_sigkill_midway_loses_nothing_and_rerun_completes_only_missing(
    slow_root: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1", CI="1")
    cmd = [
        sys.executable,
        "-m",
        "conserve_verified",
        "run",
        "slow",
        "--profile",
        "smoke",
        "--out",
        str(out),
        "--experiments-dir",
        str(slow_root),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rec_dir = out / "records" / "slow"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            if rec_dir.is_dir() and len(list(rec_dir.glob("*.json"))) >= 3:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the run wrote fewer than 3 records in 240 s")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    before = {p.name: p.read_bytes() for p in rec_dir.glob("*.json")}
    assert 3 <= len(before) < 12
    for text in before.values():
        assert json.loads(text)["status"] == "ok"
    res = _cli(
        "run", "slow", "--profile", "smoke", "--out", str(out), "--experiments-dir", str(slow_root)
    )
    assert res.returncode == 0, res.stderr
    assert (
        f"{12 - len(before)} cells finished, {len(before)} already stored, 0 failed" in res.stdout
    )
    after = {p.name: p.read_bytes() for p in rec_dir.glob("*.json")}
    assert len(after) == 12
    assert all(after[k] == v for k, v in before.items())
    assert not [p for p in rec_dir.iterdir() if not p.name.endswith(".json")]


def test_failing_cell_makes_run_exit_nonzero_and_report_lists_it(
    slow_root: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "out")
    rc = main(
        ["run", "slow", "--profile", "quick", "--out", out, "--experiments-dir", str(slow_root)]
    )
    captured = capsys.readouterr()
    assert rc == 1
    assert "10 cells finished, 0 already stored, 2 failed" in captured.out
    assert "FAILED slow" in captured.err and "cell x=5 is broken" in captured.err
    rc = main(["report", "--out", out, "--experiments-dir", str(slow_root)])
    assert rc == 1
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Failed cells" in md and "cell x=5 is broken" in md and "## slow toy" in md
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<table>" in html and "<h2>slow toy</h2>" in html


def test_unknown_experiment_lists_valid_names(
    slow_root: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["run", "nope", "--out", str(tmp_path), "--experiments-dir", str(slow_root)])
    assert rc == 2
    assert "valid: ['slow'] or 'all'" in capsys.readouterr().err
    assert not (tmp_path / "records").exists()


def test_ray_backend_writes_the_same_records_as_local(
    slow_root: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    ray = pytest.importorskip("ray")
    exp = discover(slow_root).experiments["slow"]
    local, remote = ResultStore(tmp_path / "local"), ResultStore(tmp_path / "ray")
    run_grid([exp], "smoke", RunContext(), local)
    try:
        s = run_grid([exp], "smoke", RunContext(), remote, backend="ray", jobs=2, root=slow_root)
    finally:
        ray.shutdown()
    assert (s.finished, s.failed) == (12, [])
    key = lambda r: (r["key"], r["metrics"]["y"], r["metrics"]["r"])  # noqa: E731
    assert sorted(map(key, local.records())) == sorted(map(key, remote.records()))


@pytest.mark.slow
def test_run_all_smoke_and_report_from_the_readme(tmp_path: pathlib.Path) -> None:
    out = str(tmp_path / "results")
    t0 = time.monotonic()
    res = _cli("run", "all", "--profile", "smoke", "--out", out, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    rep = _cli("report", "--out", out)
    assert rep.returncode == 0, rep.stdout + rep.stderr
    md = (tmp_path / "results" / "report.md").read_text()
    found = discover(REPO / "experiments")
    for exp in found.experiments.values():
        assert exp.title in md, exp.name
    assert "## Claims: paper vs reproduced" in md
    print(f"run all --profile smoke + report: {time.monotonic() - t0:.1f} s")
