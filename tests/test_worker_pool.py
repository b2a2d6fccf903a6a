"""The worker pool: same records on every backend, one thread per cell, Ctrl-C, up-front checks."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
import torch

from conserve_verified import _native
from conserve_verified.cli import main
from conserve_verified.runner import ResultStore, RunContext, discover, run_grid
from conserve_verified.runner.execute import (
    CELL_THREADS,
    WrongCheckout,
    _execute_by_name,
    available_cores,
    experiments_fingerprint,
)
from conserve_verified.runner.spec import config_key

REPO = pathlib.Path(__file__).resolve().parents[1]

SEEDED = """
import time
NAME = "seeded"
TITLE = "seeded toy"
CLAIMS = ()
GRIDS = {p: {"x": [0, 1, 2], "seed": [0, 1]} for p in ("smoke", "quick", "paper")}

def run_cell(config, ctx):
    import torch
    time.sleep(float(__import__("os").environ.get("SEEDED_SLEEP", "0")))
    w = torch.randn(64, 64, dtype=torch.float64)
    y = (w @ w.T).sum().item()
    return {"y": y, "x": config["x"], "threads": torch.get_num_threads()}

def report(records, out_dir):
    return "## seeded toy\\n"
"""


@pytest.fixture
def seeded_root(toy_experiments: Callable[[str, str], pathlib.Path]) -> pathlib.Path:
    return toy_experiments("seeded", SEEDED)


def _comparable(rec: dict[str, Any]) -> tuple[Any, ...]:
    rt = rec["runtime"]
    return (rec["key"], rec["status"], rec["metrics"]["y"], rt["torch_threads"], rt["torch"])


def test_same_seeded_cells_give_identical_records_on_every_backend(
    seeded_root: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    exp = discover(seeded_root).experiments["seeded"]
    results = {}
    for label, kw in (("workers=1", {"workers": 1}), ("workers=2", {"workers": 2})):
        store = ResultStore(tmp_path / label)
        s = run_grid([exp], "smoke", RunContext(), store, root=seeded_root, progress=False, **kw)
        assert (s.finished, s.failed) == (6, [])
        results[label] = sorted(map(_comparable, store.records()))
    assert results["workers=1"] == results["workers=2"]
    for rec in ResultStore(tmp_path / "workers=2").records():
        assert rec["metrics"]["threads"] == CELL_THREADS == rec["runtime"]["torch_threads"]
        assert rec["runtime"]["torch"] == torch.__version__ and rec["runtime"]["host"]
        native = _native.status()
        expected = " ".join(native["flags"]) if native["active"] else None
        assert rec["runtime"]["native_kernel"] == expected  # which forward kernel ran


def test_ray_local_mode_gives_the_same_records(
    seeded_root: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    ray = pytest.importorskip("ray")
    exp = discover(seeded_root).experiments["seeded"]
    local, remote = ResultStore(tmp_path / "local"), ResultStore(tmp_path / "ray")
    run_grid([exp], "smoke", RunContext(), local, progress=False)
    try:
        s = run_grid(
            [exp], "smoke", RunContext(), remote, backend="ray", workers=2, root=seeded_root,
            progress=False,
        )  # fmt: skip
    finally:
        ray.shutdown()
    assert (s.finished, s.failed) == (6, [])
    assert sorted(map(_comparable, local.records())) == sorted(map(_comparable, remote.records()))


def test_worker_refuses_another_checkouts_experiments(
    seeded_root: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    good = experiments_fingerprint(seeded_root)
    rec = _execute_by_name(str(seeded_root), "seeded", {"x": 0, "seed": 0}, RunContext(), good)
    assert rec["status"] == "ok"
    with pytest.raises(WrongCheckout, match="another checkout"):
        _execute_by_name(str(seeded_root), "seeded", {"x": 0, "seed": 0}, RunContext(), "0" * 16)
    (seeded_root / "seeded.py").write_text(SEEDED + "\n# edited\n")
    assert experiments_fingerprint(seeded_root) != good


def _popen(args: list[str], **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "conserve_verified", *args],
        env=dict(os.environ, OMP_NUM_THREADS="1", CI="1", **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_prints_one_line_exits_130_and_rerun_resumes(
    seeded_root: pathlib.Path, tmp_path: pathlib.Path, workers: int
) -> None:
    out = tmp_path / "out"
    args = ["run", "seeded", "--out", str(out), "--experiments-dir", str(seeded_root)]
    args += ["--workers", str(workers)]
    proc = _popen(args, SEEDED_SLEEP="0.7")
    rec_dir = out / "records" / "seeded"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            if rec_dir.is_dir() and len(list(rec_dir.glob("*.json"))) >= 2:
                break
            time.sleep(0.05)
        else:
            pytest.fail("fewer than 2 records in 240 s")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    done = len(list(rec_dir.glob("*.json")))
    assert last == f"interrupted after {done}/6 cells; rerun the same command to resume"
    assert "Traceback" not in err
    rerun = _popen(args)
    stdout, err2 = rerun.communicate(timeout=240)
    assert rerun.returncode == 0, err2
    assert f"{6 - done} cells finished, {done} already stored, 0 failed" in stdout


def test_progress_is_one_line_per_cell_off_a_terminal(
    seeded_root: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        ["run", "SEEDED", "--workers", "1", "--out", str(tmp_path), "--experiments-dir",
         str(seeded_root)]
    )  # fmt: skip
    assert rc == 0
    err = capsys.readouterr().err.splitlines()
    lines = [ln for ln in err if ln.startswith("[")]
    assert len(lines) == 6
    assert lines[0].startswith("[1/6] seeded x=0 seed=0 ok ") and "ETA 0:00:" in lines[0]
    assert lines[-1].startswith("[6/6] seeded x=2 seed=1 ok ")


def test_unknown_name_suggests_the_closest(
    seeded_root: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["run", "seedd", "--out", str(tmp_path), "--experiments-dir", str(seeded_root)]) == 2
    )
    err = capsys.readouterr().err
    assert "did you mean 'seeded'?" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--data", "mnist", "--data-dir", "EMPTY"], "--data='mnist': dataset not available"),
        (["--data", "cifar10"], "--data='cifar10': dataset not available"),
        (["--data", "nosuchdata"], "unknown dataset"),
        (["--device", "nosuchdevice"], "--device='nosuchdevice'"),
    ],
)
def test_data_and_device_are_checked_once_before_any_cell(
    seeded_root: pathlib.Path,
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    (tmp_path / "EMPTY").mkdir()
    extra = [str(tmp_path / "EMPTY") if e == "EMPTY" else e for e in extra]
    out = tmp_path / "out"
    argv = ["run", "seeded", "--out", str(out), "--experiments-dir", str(seeded_root), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (out / "records").exists()


def test_run_quarantines_a_corrupt_record_and_recomputes_it(
    seeded_root: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "seeded", "--workers", "1", "--out", str(tmp_path)]
    argv += ["--experiments-dir", str(seeded_root)]
    bad = tmp_path / "records" / "seeded" / f"{config_key({'x': 0, 'seed': 0}, 'digits')}.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    assert main(argv) == 0
    err = capsys.readouterr().err
    dest = tmp_path / "quarantine" / "seeded" / bad.name
    assert f"corrupt record {bad} quarantined to {dest}: cannot be read as JSON" in err
    assert dest.read_text() == "{not json" and ResultStore(tmp_path).read("seeded", bad.stem)


def test_available_cores_and_default_workers() -> None:
    assert 1 <= available_cores() <= (os.cpu_count() or 1)


def test_set_overrides_a_grid_axis_and_dry_run_counts(
    seeded_root: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["run", "seeded", "--out", str(tmp_path), "--experiments-dir", str(seeded_root)]
    assert main([*base, "--set", "x=[5, 6]", "--set", "seed=3", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "seeded: 2 cells to run, 0 already stored" in out
    assert not (tmp_path / "records").exists()
    assert main([*base, "--workers", "1", "--set", "x=[5, 6]", "--set", "seed=3"]) == 0
    got = sorted((r["config"]["x"], r["config"]["seed"]) for r in ResultStore(tmp_path).records())
    assert got == [(5, 3), (6, 3)]
    assert "--set 'x=[5, 6]'" in ResultStore(tmp_path).runs()[-1]["command"]
    assert main([*base, "--set", "nosuchaxis=1"]) == 2
    assert "no selected experiment has these axes" in capsys.readouterr().err
    assert main([*base, "--set", "novalue"]) == 2
    assert "expected AXIS=VALUES" in capsys.readouterr().err


def test_list_shows_experiments_claims_and_cell_counts(
    seeded_root: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--list", "--experiments-dir", str(seeded_root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["experiment", "claims", "cells"]
    assert out[1].split()[:6] == ["seeded", "-", "6", "/", "6", "/"]


def test_load_records_frame_and_report_csv(
    seeded_root: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from conserve_verified.runner import load_records

    exp = discover(seeded_root).experiments["seeded"]
    store = ResultStore(tmp_path)
    run_grid([exp], "smoke", RunContext(), store, progress=False)
    frame = load_records(tmp_path)
    assert len(frame) == len(store.records()) == 6
    assert {"config.x", "config.seed", "metrics.y", "runtime.torch_threads"} <= set(frame.columns)
    argv = ["report", "--out", str(tmp_path), "--experiments-dir", str(seeded_root)]
    assert main([*argv, "--csv", str(tmp_path / "records.csv")]) == 0
    text = (tmp_path / "records.csv").read_text().splitlines()
    assert len(text) == 7 and "metrics.y" in text[0]
    capsys.readouterr()
