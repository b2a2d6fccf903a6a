"""Tests of the runner: spec validation, discovery, cells, store, resume, local backend."""

from __future__ import annotations

import json
import pathlib
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest

from conserve_verified.errors import InvalidArgument
from conserve_verified.runner import (
    ResultStore,
    RunContext,
    cells,
    config_key,
    discover,
    run_grid,
    validate_module,
)
from conserve_verified.runner.claims import CLAIMS_PATH, claim, claim_ids
from conserve_verified.runner.store import atomic_write_json

TOY = """
NAME = "toy"
TITLE = "toy experiment"
CLAIMS = ("E1",)
GRIDS = {
    "smoke": {"x": [1, 2], "seed": [0, 1]},
    "quick": {"x": [1, 2, 3], "seed": [0, 1, 2]},
    "paper": {"x": [1, 2, 3], "seed": list(range(5))},
}

def run_cell(config, ctx):
    import torch
    if config["x"] == 99:
        raise RuntimeError("boom")
    return {"y": config["x"] * 10 + config["seed"], "r": float(torch.rand(()).item()),
            "data": ctx.data, "profile": ctx.profile}

def report(records, out_dir):
    return "## toy\\n" + str(len(records))
"""


@pytest.fixture
def toy_root(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    root = tmp_path / "exp" / "experiments"
    root.mkdir(parents=True)
    (root / "__init__.py").write_text(
        pathlib.Path(__file__).parents[1].joinpath("experiments", "__init__.py").read_text()
    )
    (root / "toy.py").write_text(TOY)
    (root / "broken.py").write_text("raise ImportError('cannot load me')\n")
    (root / "_private.py").write_text("x = 1\n")
    saved = {
        k: v for k, v in sys.modules.items() if k == "experiments" or k.startswith("experiments.")
    }
    for k in saved:
        del sys.modules[k]
    yield root
    for k in [k for k in sys.modules if k == "experiments" or k.startswith("experiments.")]:
        del sys.modules[k]
    sys.modules.update(saved)
    if str(root.parent) in sys.path:
        sys.path.remove(str(root.parent))


def _module(**attrs: object) -> ModuleType:
    m = ModuleType("experiments.fake")
    base = {
        "NAME": "fake",
        "TITLE": "t",
        "CLAIMS": (),
        "GRIDS": {p: {"seed": [0]} for p in ("smoke", "quick", "paper")},
        "run_cell": lambda c, ctx: {},
        "report": lambda r, o: "",
    }
    base.update(attrs)
    for k, v in base.items():
        setattr(m, k, v)
    return m


def test_validate_module_accepts_protocol() -> None:
    exp = validate_module(_module())
    assert exp.name == "fake" and cells(exp, "smoke") == [{"seed": 0}]


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        (
            {"GRIDS": {"smoke": {"x": [1]}, "quick": {"seed": [0]}, "paper": {"seed": [0]}}},
            "no 'seed'",
        ),
        ({"GRIDS": {"smoke": {"seed": [0]}, "quick": {"seed": [0]}}}, "missing \\['paper'\\]"),
        (
            {"GRIDS": {p: {"seed": [0]} for p in ("smoke", "quick", "paper", "huge")}},
            "unknown \\['huge'\\]",
        ),
        ({"GRIDS": {p: {"seed": [0], "x": []} for p in ("smoke", "quick", "paper")}}, "empty"),
        ({"GRIDS": {p: {"seed": [-1]} for p in ("smoke", "quick", "paper")}}, "ints >= 0"),
        (
            {"GRIDS": {p: {"seed": [0], "x": [object()]} for p in ("smoke", "quick", "paper")}},
            "JSON",
        ),
        ({"GRIDS": {p: {"seed": [0, 0]} for p in ("smoke", "quick", "paper")}}, "repeats"),
        ({"NAME": "bad name!"}, "NAME"),
        ({"run_cell": 3}, "not callable"),
    ],
)
def test_validate_module_rejects_bad_specs(attrs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        validate_module(_module(**attrs))


def test_validate_module_rejects_unknown_claims_and_missing_names() -> None:
    with pytest.raises(InvalidArgument, match=r"not in claims\.json"):
        validate_module(_module(CLAIMS=("E9",)), claim_ids())
    m = _module()
    del m.report
    with pytest.raises(InvalidArgument, match="does not define \\['report'\\]"):
        validate_module(m)


def test_cells_are_the_cartesian_product_in_order() -> None:
    grid = {"a": [1, 2], "b": ["u", "v", "w"], "seed": [0, 1]}
    exp = validate_module(_module(GRIDS={p: grid for p in ("smoke", "quick", "paper")}))
    out = cells(exp, "quick")
    assert len(out) == 12 and out[0] == {"a": 1, "b": "u", "seed": 0}
    assert out[1] == {"a": 1, "b": "u", "seed": 1}
    assert len({config_key(c, "digits") for c in out}) == 12
    with pytest.raises(InvalidArgument, match="valid: \\['smoke', 'quick', 'paper'\\]"):
        cells(exp, "fast")


def test_config_key_is_order_independent_and_depends_on_data() -> None:
    assert config_key({"a": 1, "seed": 0}, "digits") == config_key({"seed": 0, "a": 1}, "digits")
    assert config_key({"a": 1, "seed": 0}, "digits") != config_key({"a": 1, "seed": 0}, "mnist1d")


def test_discover_finds_valid_experiments_and_reports_broken_ones(toy_root: pathlib.Path) -> None:
    found = discover(toy_root)
    assert list(found.experiments) == ["toy"]
    assert "broken" in found.errors and "cannot load me" in found.errors["broken"]
    assert "_private" not in found.errors


def test_run_grid_stores_records_and_resumes(
    toy_root: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    exp = discover(toy_root).experiments["toy"]
    store = ResultStore(tmp_path / "out")
    ctx = RunContext(out_dir=tmp_path / "out")
    s1 = run_grid([exp], "smoke", ctx, store)
    assert (s1.finished, s1.skipped, s1.failed) == (4, 0, [])
    recs = store.records("toy")
    assert sorted(r["metrics"]["y"] for r in recs) == [10, 11, 20, 21]
    assert all(r["profile"] == "smoke" and r["data"] == "digits" for r in recs)
    s2 = run_grid([exp], "smoke", ctx, store)
    assert (s2.finished, s2.skipped) == (0, 4)
    s3 = run_grid([exp], "quick", ctx, store)
    assert (s3.finished, s3.skipped) == (5, 4)


def test_run_cell_is_seeded_from_config(toy_root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    exp = discover(toy_root).experiments["toy"]
    a, b = ResultStore(tmp_path / "a"), ResultStore(tmp_path / "b")
    run_grid([exp], "smoke", RunContext(), a)
    run_grid([exp], "smoke", RunContext(), b)
    ra = {r["key"]: r["metrics"]["r"] for r in a.records()}
    rb = {r["key"]: r["metrics"]["r"] for r in b.records()}
    assert ra == rb and len(set(ra.values())) == 2  # one stream per seed


def test_failing_cell_is_an_error_record_and_retried(
    toy_root: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    exp = discover(toy_root).experiments["toy"]
    grids = {p: {"x": [1, 99], "seed": [0]} for p in ("smoke", "quick", "paper")}
    bad = validate_module(
        _module(NAME="toy", GRIDS=grids, run_cell=exp.run_cell, report=exp.report)
    )
    store = ResultStore(tmp_path / "out")
    s = run_grid([bad], "smoke", RunContext(), store)
    assert s.finished == 1 and len(s.failed) == 1 and "boom" in s.failed[0][2]
    errs = store.records("toy", status="error")
    assert len(errs) == 1 and "RuntimeError: boom" in errs[0]["error"]
    assert run_grid([bad], "smoke", RunContext(), store).skipped == 1


def test_non_json_metrics_are_an_error(tmp_path: pathlib.Path) -> None:
    exp = validate_module(_module(run_cell=lambda c, ctx: {"v": float("nan")}))
    s = run_grid([exp], "smoke", RunContext(), ResultStore(tmp_path))
    assert "not finite JSON" in s.failed[0][2]


def test_run_grid_rejects_unknown_backend(tmp_path: pathlib.Path) -> None:
    with pytest.raises(InvalidArgument, match="valid: \\['local', 'ray'\\]"):
        run_grid(
            [validate_module(_module())], "smoke", RunContext(), ResultStore(tmp_path), backend="x"
        )


def test_atomic_write_leaves_no_temporary_files(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "d" / "r.json"
    atomic_write_json(p, {"a": 1})
    atomic_write_json(p, {"a": 2})
    assert json.loads(p.read_text()) == {"a": 2}
    assert [q.name for q in p.parent.iterdir()] == ["r.json"]
    with pytest.raises(ValueError):
        atomic_write_json(p, {"a": float("nan")})
    assert json.loads(p.read_text()) == {"a": 2}
    assert [q.name for q in p.parent.iterdir()] == ["r.json"]


def test_packaged_claims_equal_shared_claims() -> None:
    shared = pathlib.Path(__file__).resolve().parents[2] / "shared" / "claims.json"
    if not shared.is_file():
        pytest.skip("shared/claims.json is not beside this checkout")
    assert json.loads(CLAIMS_PATH.read_text()) == json.loads(shared.read_text())


def test_claim_lookup() -> None:
    assert claim("E1")["values"]["conserved"] == [77.4, 1.0]
    with pytest.raises(InvalidArgument, match="unknown claim"):
        claim("Z")
