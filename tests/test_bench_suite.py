"""The benchmark suite runs end to end at tiny sizes (no assertion on time).

Benchmarks are not timed tests: these tests check that every section runs,
that the JSON and Markdown outputs are written and complete, and that the
reported ratios are the ratios of the reported times.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import benchmarks
from conserve_verified import InvalidArgument
from conserve_verified.cli import main


def test_bench_command_writes_json_and_markdown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json, out_md = tmp_path / "bench.json", tmp_path / "bench.md"
    code = main(["bench", "--tiny", "--json", str(out_json), "--markdown", str(out_md)])
    assert code == 0
    result = json.loads(out_json.read_text())
    assert set(result["sections"]) == set(benchmarks.SECTIONS)
    markdown = out_md.read_text()
    assert markdown == capsys.readouterr().out
    for heading in (
        "## Operator",
        "## Pipeline",
        "## Paired ratios",
        "## Compiled forms of the forward",
        "## Proof suite",
        "## Noise",
        "## Hypothesis",
    ):
        assert heading in markdown

    rows = result["sections"]["operator"]["rows"]
    assert {r["dtype"] for r in rows} == {"float32", "bfloat16"}
    for r in rows:
        ms = {k: v["median_ms"] for k, v in r["timings"].items()}
        peer = min(ms["rms_norm.fwd_bwd"], ms["normalize.fwd_bwd"])
        assert math.isclose(r["ratios"]["fwd_bwd_vs_peer"], ms["conserve.fwd_bwd"] / peer)
        assert all(v > 0 for v in ms.values())

    models = [r["model"] for r in result["sections"]["pipeline"]["rows"]]
    assert models == ["mlp", "resnet18"]
    for r in result["sections"]["pipeline"]["rows"]:
        ms = {k: v["median_ms"] for k, v in r["timings"].items()}
        for label in ("fwd", "fwd_bwd"):
            assert math.isclose(
                r["ratios"][f"normalize_vs_plain.{label}"],
                ms[f"normalized.{label}"] / ms[f"plain.{label}"],
            )
    pairs = result["sections"]["paired"]
    assert [(r["dtype"], r["features"]) for r in pairs["eager"]] == [
        (d, 16) for d in ("float32", "bfloat16")
    ]
    for r in [*pairs["eager"], *pairs["compiled"], *pairs["checks"].values()]:
        if isinstance(r, dict):
            assert r["pairs"] == 2 and 0 < r["q1"] <= r["median"] <= r["q3"]
    forms = result["sections"]["compiled_forms"]
    assert [(r["dtype"], r["features"]) for r in forms["rows"]] == [
        (d, 16) for d in ("float32", "bfloat16")
    ]
    for r in forms["rows"]:
        for f in forms["forms"]:
            assert r[f]["pairs"] == 2 and 0 < r[f]["q1"] <= r[f]["median"] <= r[f]["q3"]
    proofs = result["sections"]["proofs"]
    assert len(proofs["rows"]) == 1 and proofs["registered"] >= 1
    assert result["sections"]["propagation"]["taps"] > 0
    hyp = result["sections"]["hypothesis"]["rows"]
    assert hyp and all(r["examples"] >= 1 for r in hyp)


def test_bench_sections_subset_and_python_m_entry(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.cli import main as bench_main

    assert bench_main(["--tiny", "--sections", "operator"]) == 0
    out = capsys.readouterr().out
    assert "## Operator" in out and "## Pipeline" not in out
    assert "Compiled (`torch.compile(fullgraph=True)`" in out


def test_bench_compiled_rows_are_ratios_of_their_times() -> None:
    result = benchmarks.run("tiny", ["operator", "pipeline"])
    for r in result["sections"]["operator"]["rows"]:
        ms = {k: v["median_ms"] for k, v in r["timings"].items()}
        peer = min(ms["rms_norm_compiled.fwd"], ms["normalize_compiled.fwd"])
        assert math.isclose(r["ratios"]["compiled_fwd_vs_peer"], ms["conserve_compiled.fwd"] / peer)
    mlp, resnet = result["sections"]["pipeline"]["rows"]
    ms = {k: v["median_ms"] for k, v in mlp["timings"].items()}
    for label in ("fwd", "fwd_bwd"):
        assert math.isclose(
            mlp["ratios"][f"compiled_checks_on_vs_off.{label}"],
            ms[f"conserved_compiled_checks.{label}"] / ms[f"conserved_compiled.{label}"],
        )
    assert not any("compiled" in k for k in resnet["timings"])


def test_bench_rejects_unknown_profile_and_section() -> None:
    with pytest.raises(InvalidArgument, match="profile='huge'"):
        benchmarks.run("huge")
    with pytest.raises(InvalidArgument, match="sections"):
        benchmarks.run("tiny", ["operator", "nope"])


def test_bench_threads_and_rounds_override_the_profile(tmp_path: Path) -> None:
    from benchmarks.cli import main as bench_main

    out_json = tmp_path / "bench.json"
    args = ["--tiny", "--sections", "proofs", "--threads", "1", "--rounds", "3"]
    assert bench_main([*args, "--json", str(out_json)]) == 0
    result = json.loads(out_json.read_text())
    assert result["profile"]["threads"] == 1 and result["profile"]["rounds"] == 3
    assert result["machine"]["threads"] == 1
    with pytest.raises(SystemExit):
        bench_main(["--tiny", "--threads", "0"])


def test_bench_operator_devices_and_sizes_follow_the_profile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dataclasses

    import torch

    from benchmarks import operator_ratios

    tiny = benchmarks.PROFILES["tiny"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert operator_ratios.devices(tiny) == [torch.device("cpu")]
    cpu_only = dataclasses.replace(tiny, devices=("cpu",))
    assert operator_ratios.devices(cpu_only) == [torch.device("cpu")]
    for bad, reason in ((("cuda",), "CUDA is not available"), (("tpu",), "must be some of")):
        with pytest.raises(InvalidArgument, match=reason) as err:
            operator_ratios.devices(dataclasses.replace(tiny, devices=bad))
        assert err.value.argument == "devices"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert operator_ratios.devices(tiny) == [torch.device("cpu"), torch.device("cuda")]
    quick = benchmarks.PROFILES["quick"]
    # the GPU rows of the quick profile: 16384 x 4096 and x 8192
    assert operator_ratios.sizes(quick, torch.device("cuda")) == (16384, (4096, 8192))
    assert operator_ratios.sizes(quick, torch.device("cpu")) == (4096, (256, 1024, 4096, 8192))


def test_bench_devices_option_reaches_the_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    from benchmarks.cli import main as bench_main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out_json = tmp_path / "bench.json"
    args = ["--tiny", "--sections", "operator", "--devices", "cpu", "--json", str(out_json)]
    assert bench_main(args) == 0
    result = json.loads(out_json.read_text())
    assert result["profile"]["devices"] == ["cpu"]
    assert {r["device"] for r in result["sections"]["operator"]["rows"]} == {"cpu"}
    # the note names the profile's GPU sizes (tiny: 8 x 16)
    assert "No CUDA rows in this run" in capsys.readouterr().out
    assert "GPU rows (8 × 16) are not measured here" in benchmarks.to_markdown(result)
    assert bench_main(["--tiny", "--sections", "operator", "--devices", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        "python -m benchmarks: error: devices=('cuda',): CUDA is not available on this machine"
    )


def test_paired_ratio_is_the_candidate_over_its_fastest_peer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ratio is computed from the timer's medians: with a timer whose medians are
    known (no wall clock, so no machine load in the result), each pair's ratio is the
    candidate's time over the fastest peer's, and the quartiles are those of the pairs."""
    from types import SimpleNamespace

    from benchmarks import paired_ratios

    times: dict[str, list[float]] = {"cand": [2.0, 3.0, 4.0], "slow": [9.0] * 3, "fast": [1.0] * 3}
    calls = {k: 0 for k in times}

    class FakeTimer:
        def __init__(self, stmt: str, globals: dict[str, Any], num_threads: int) -> None:
            self.name = globals["fn"].name

        def blocked_autorange(self, min_run_time: float) -> Any:
            i = calls[self.name]
            calls[self.name] += 1
            return SimpleNamespace(median=times[self.name][i])

    def fn(name: str) -> Callable[[], None]:
        f = lambda: None  # noqa: E731
        f.name = name  # type: ignore[attr-defined]
        return f

    monkeypatch.setattr(paired_ratios, "Timer", FakeTimer)
    r = paired_ratios.paired(
        fn("cand"), [fn("slow"), fn("fast")], pairs=3, run_time=0.01, threads=1
    )
    # per pair: 2/1, 3/1, 4/1 (the fastest peer is "fast")
    assert r["pairs"] == 3 and r["median"] == 3.0
    assert (r["q1"], r["q3"]) == (2.5, 3.5)  # inclusive quartiles of 2, 3, 4
    assert calls == {"cand": 3, "slow": 3, "fast": 3}
    times.update(a=[1.0, 9.0], b=[1.0, 1.0])
    calls.update(a=0, b=0)
    two = paired_ratios.paired(fn("a"), [fn("b")], pairs=2, run_time=0.001, threads=1)
    assert 1.0 <= two["q1"] <= two["median"] == 5.0 <= two["q3"] <= 9.0  # within the data
    times.update(one=[5.0], peer=[2.0])
    calls.update(one=0, peer=0)
    one = paired_ratios.paired(fn("one"), [fn("peer")], pairs=1, run_time=0.001, threads=1)
    assert one["q1"] == one["median"] == one["q3"] == 2.5
