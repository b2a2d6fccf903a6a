"""Tests of the proof engine: verdicts, broken statements, registry, certificate, collector, CLI."""

from __future__ import annotations

import contextlib
import gc
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import sympy as sp
import z3

from conserve_verified.cli import main
from conserve_verified.errors import InvalidArgument, InvalidArgumentType
from conserve_verified.proof import (
    REGISTRY,
    Mutant,
    Status,
    Theorem,
    TheoremResult,
    Verdict,
    all_of,
    certificate,
    check_all,
    check_claim,
    custom,
    general,
    induction,
    instance,
    register,
    sympy_identity,
    write_certificate,
    z3_implies,
)
from conserve_verified.proof._budget import BudgetExceeded, time_budget

a, b = sp.symbols("a b", positive=True)
x, y = z3.Reals("x y")


def _theorem(tid: str = "ZZ1", **kw: object) -> Theorem:
    args: dict[str, object] = {
        "id": tid,
        "name": "square of a sum",
        "statement": "(a + b)^2 = a^2 + 2ab + b^2",
        "assumptions": ("a, b > 0",),
        "claim": sympy_identity((a + b) ** 2, a**2 + 2 * a * b + b**2),
        "mutants": (Mutant("no-cross", "forgot 2ab", sympy_identity((a + b) ** 2, a**2 + b**2)),),
        "property_test": "property_tests/test_x.py::test_x",
        "theory": "test",
        "scope": general("every a, b > 0"),
    }
    args.update(kw)
    return Theorem(**args)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- verdicts


def test_proof_true_identity_is_proved() -> None:
    v = check_claim(sympy_identity((a + b) ** 2, a**2 + 2 * a * b + b**2), 10)
    assert v.status is Status.PROVED and v.counterexample is None and v.time_s >= 0


def test_proof_wrong_identity_is_refuted_with_exact_counterexample() -> None:
    v = check_claim(sympy_identity((a + b) ** 2, a**2 + b**2), 10)
    assert v.status is Status.REFUTED
    assert v.counterexample is not None
    point = {sp.Symbol(k, positive=True): sp.Rational(val) for k, val in v.counterexample.items()}
    assert ((a + b) ** 2 - a**2 - b**2).xreplace(point) != 0


def test_proof_true_inequality_is_proved() -> None:
    v = check_claim(z3_implies([x > 0, y > 0], (x + y) ** 2 >= 4 * x * y), 10)
    assert v.status is Status.PROVED


def test_proof_wrong_inequality_is_refuted_and_rechecked() -> None:
    claim = z3_implies([x > 0, y > 0], (x + y) ** 2 > 4 * x * y)
    v = check_claim(claim, 10)
    assert v.status is Status.REFUTED and v.counterexample is not None
    assert sp.Rational(v.counterexample["x"]) == sp.Rational(v.counterexample["y"])
    assert claim.recheck(v.counterexample) is None
    assert claim.recheck({"x": "1", "y": "2"}) is not None  # not a counterexample


def test_proof_undecided_within_tiny_timeout_is_unknown_never_proved() -> None:
    i, j, k = z3.Ints("i j k")
    hard = z3_implies([], i**3 + j**3 + k**3 != 33)  # false, but the witness is huge
    v = check_claim(hard, 0.05)
    assert v.status is Status.UNKNOWN and v.reason


def test_proof_sympy_budget_overrun_is_unknown() -> None:
    t = sp.Symbol("t", real=True)
    heavy = sympy_identity(sp.expand((t + 1) ** 400) - (t + 1) ** 400, 0)
    assert check_claim(heavy, 0.01).status is Status.UNKNOWN


def test_proof_identity_true_on_samples_but_unreduced_is_not_proved() -> None:
    t = sp.Symbol("t", real=True)
    # differs from 0 only at t = 0, which the rational sampler may hit; never PROVED
    v = check_claim(sympy_identity(sp.Piecewise((1, sp.Eq(t, 0)), (0, True)), 0), 10)
    assert v.status is not Status.PROVED


def test_proof_z3_model_failing_recheck_is_error() -> None:
    # Z3 interprets x / 0 freely, SymPy does not: the model cannot be confirmed
    v = check_claim(z3_implies([y == 0], x / y != 5), 10)
    assert v.status is Status.ERROR and "re-check" in v.reason


def _in_engine(fn: object) -> object:
    """Mark a test checker as defined in the engine (the trust-base rule looks at __module__)."""
    fn.__module__ = "conserve_verified.proof.test_checker"  # type: ignore[attr-defined]
    return fn


def test_proof_custom_refutation_needs_recheck() -> None:
    @_in_engine
    def fn(timeout_s: float) -> Verdict:
        return Verdict(Status.REFUTED, "bad", {"x": "1"})

    assert check_claim(custom(fn, latex="x", description="d"), 5).status is Status.ERROR
    bad = custom(fn, latex="x", description="d", recheck=lambda cex: "not a counterexample")
    assert check_claim(bad, 5).status is Status.ERROR
    good = custom(fn, latex="x", description="d", recheck=lambda cex: None)
    assert check_claim(good, 5).status is Status.REFUTED


def test_proof_crashing_backend_is_error() -> None:
    @_in_engine
    def fn(timeout_s: float) -> Verdict:
        raise RuntimeError("boom")

    v = check_claim(custom(fn, latex="x", description="d"), 5)
    assert v.status is Status.ERROR and "boom" in v.reason


def test_proof_all_of_needs_every_part() -> None:
    good = sympy_identity(a * b, b * a)
    bad = sympy_identity(a + b, a * b)
    assert check_claim(all_of(good, good), 10).status is Status.PROVED
    v = check_claim(all_of(good, bad), 10)
    assert v.status is Status.REFUTED and len(v.parts) == 2


def test_proof_induction_refuted_step_is_unknown() -> None:
    k = z3.Int("k")
    v = check_claim(
        induction(
            k=k,
            state=[x],
            predicate=lambda _k, st: st[0] <= 1,
            init=[z3.RealVal(0)],
            transition=lambda _k, st: [st[0] + 1],  # the step fails: 1 -> 2
        ),
        10,
    )
    assert v.status is Status.UNKNOWN


def test_proof_induction_from_one_predicate_proves_and_uses_its_hypothesis() -> None:
    k = z3.Int("k")
    v = check_claim(
        induction(
            k=k,
            state=[x],
            predicate=lambda kk, st: st[0] >= z3.ToReal(kk),
            init=[z3.RealVal(0)],
            transition=lambda _k, st: [st[0] + 1],
        ),
        20,
    )
    assert v.status is Status.PROVED and v.details["induction_hypothesis_used"] is True


def test_proof_timeout_validated() -> None:
    with pytest.raises(InvalidArgument, match="timeout_s"):
        check_claim(sympy_identity(a, a), 0)
    with pytest.raises(InvalidArgumentType, match="timeout_s"):
        check_claim(sympy_identity(a, a), "1")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- theorems


def test_proof_theorem_validation() -> None:
    with pytest.raises(InvalidArgument, match="property_test"):
        _theorem(property_test="tests/test_x.py")
    with pytest.raises(InvalidArgument, match="mutants"):
        _theorem(mutants=())
    with pytest.raises(InvalidArgument, match="expect"):
        _theorem(expect=Status.UNKNOWN)
    with pytest.raises(InvalidArgumentType, match="claim"):
        _theorem(claim="a = a")
    with pytest.raises(InvalidArgument, match="id"):
        _theorem(tid="1 bad")
    with pytest.raises(InvalidArgumentType, match="scope"):
        _theorem(scope=None)
    with pytest.raises(InvalidArgument, match="general scope"):
        _theorem(statement="for all a, b", scope=instance("a = b = 1"))
    assert _theorem(mutants=(), expect=Status.REFUTED).expect is Status.REFUTED


def test_proof_register_same_twice_and_conflict() -> None:
    t = _theorem("ZZ-register")
    try:
        assert register(t) is REGISTRY["ZZ-register"] or REGISTRY["ZZ-register"] == t
        register(t)  # same statement: replaced
        other = _theorem("ZZ-register", claim=sympy_identity(a, a))
        with pytest.raises(InvalidArgument, match="already registered"):
            register(other)
    finally:
        REGISTRY.pop("ZZ-register", None)


def test_proof_statement_hash_changes_with_statement() -> None:
    t1 = _theorem()
    t2 = _theorem(claim=sympy_identity((a + b) ** 2, a**2 + 2 * a * b + b**2 + 0 * a + 1))
    assert t1.statement_hash == _theorem().statement_hash
    assert t1.statement_hash != t2.statement_hash


def test_proof_certificate_contents_and_atomic_write(tmp_path: Path) -> None:
    results = check_all([_theorem()], timeout_s=10)
    assert isinstance(results[0], TheoremResult) and results[0].ok
    cert = certificate(results, 10)
    assert set(cert["versions"]) >= {"python", "z3", "cvc5", "sympy", "torch"}
    (entry,) = cert["theorems"]
    assert entry["scope"] == {"kind": "general", "detail": "every a, b > 0"}
    for key in ("id", "name", "verdict", "time_s", "backend", "statement", "latex"):
        assert key in entry
    assert entry["verdict"] == "PROVED" and entry["counterexample"] is None
    assert entry["mutants"][0]["verdict"] == "REFUTED" and entry["mutants"][0]["counterexample"]
    assert len(entry["statement_hash"]) == 64
    path = write_certificate(tmp_path / "sub" / "cert.json", results, 10)
    assert json.loads(path.read_text())["ok"] is True
    assert [p.name for p in path.parent.iterdir()] == ["cert.json"]


def test_proof_certificate_records_both_solvers_hash_core_and_unused(tmp_path: Path) -> None:
    from conserve_verified.proof import smt

    t = _theorem(
        "ZZ-smt",
        claim=z3_implies([x > 0, y > 0, x < 5], x * y > 0),
        mutants=(Mutant("weak", "x y > 1 fails", z3_implies([x > 0, y > 0], x * y > 1)),),
    )
    smt.set_export_dir(tmp_path / "smt")
    try:
        cert = certificate(check_all([t], timeout_s=20), 20)
    finally:
        smt.set_export_dir(None)
    (entry,) = cert["theorems"]
    assert entry["verdict"] == "PROVED" and entry["solvers"] == ["z3", "cvc5"]
    details = entry["details"]
    assert details["witness"] and details["unused_hypotheses"] == ["h2: x < 5"]
    assert details["unsat_core"] == ["h0: x > 0", "h1: y > 0"]
    assert details["necessary"]["h2: x < 5"] == "not necessary"
    proof = next(q for q in details["queries"] if q["role"].startswith("proof"))
    assert proof["z3"]["result"] == proof["cvc5"]["result"] == "unsat"
    text = (tmp_path / "smt" / proof["file"]).read_text()
    import hashlib

    assert hashlib.sha256(text.encode()).hexdigest() == proof["sha256"]
    assert "(set-logic QF_NRA)" in text and "^" not in text
    assert cert["smt"]["both_decided"] >= 2


# ----------------------------------------------------------------------------- collector and CLI

_THEORY = textwrap.dedent(
    """
    import sympy as sp
    from conserve_verified.proof import Mutant, Theorem, register, sympy_identity

    from conserve_verified.proof import general, instance

    a, b = sp.symbols("a b", positive=True)
    register(Theorem(
        id="ZZ-good", name="good", statement="s", assumptions=(),
        claim=sympy_identity(a * b, b * a),
        mutants=(Mutant("bad", "wrong", sympy_identity(a * b, a + b)),),
        property_test="property_tests/test_x.py::test_x", theory="tmp",
        scope=general("every a, b > 0"),
    ))
    register(Theorem(
        id="ZZ-wrong", name="wrong", statement="s", assumptions=(),
        claim=sympy_identity((a + b) ** 2, a**2 + b**2),
        mutants=(Mutant("true", "a true statement is not killed", sympy_identity(a, a)),),
        property_test="property_tests/test_x.py::test_x", theory="tmp",
        scope=instance("a, b > 0"),
    ))
    """
)


def _proofs_dir(tmp_path: Path) -> Path:
    d = tmp_path / "proofs"
    d.mkdir()
    (d / "conftest.py").write_text(
        "from conserve_verified.proof.pytest_plugin import pytest_collect_file\n"
    )
    (d / "tmp_theory.py").write_text(_THEORY)
    return d


def test_proof_pytest_collects_theorems_and_mutants(tmp_path: Path) -> None:
    d = _proofs_dir(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(d), "-p", "no:cacheprovider", "-q", "-rA",
         "-o", "addopts=", "--rootdir", str(tmp_path)],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    out = proc.stdout
    assert proc.returncode == 1, out
    assert "PASSED proofs/tmp_theory.py::ZZ-good[general]" in out
    assert "PASSED proofs/tmp_theory.py::ZZ-good[mutant=bad]" in out
    assert "FAILED proofs/tmp_theory.py::ZZ-wrong[instance]" in out
    assert "FAILED proofs/tmp_theory.py::ZZ-wrong[mutant=true]" in out
    assert "counterexample:" in out and "expected PROVED, got" in out


def test_proof_verify_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = _proofs_dir(tmp_path)
    cert = tmp_path / "cert.json"
    try:
        code = main(["verify", "--proofs-dir", str(d), "--json", str(cert), "--timeout", "10"])
        out = capsys.readouterr()
        assert code == 1
        assert "ZZ-good" in out.out and "ZZ-wrong" in out.out and "counterexample" in out.err
        data = json.loads(cert.read_text())
        assert data["ok"] is False
        assert [t["verdict"] for t in data["theorems"]] == ["PROVED", "REFUTED"]
        assert "general" in out.out and "instance" in out.out
        assert main(["verify", "--proofs-dir", str(d), "-k", "ZZ-good", "--timeout", "10"]) == 0
        assert main(["verify", "--proofs-dir", str(d), "--timeout", "-1"]) == 2
        capsys.readouterr()
        assert main(["verify", "--proofs-dir", str(d), "-k", "nothing-like-this"]) == 2
        assert "matches no theorem" in capsys.readouterr().err
    finally:
        REGISTRY.pop("ZZ-good", None)
        REGISTRY.pop("ZZ-wrong", None)


def test_time_budget_raises_even_when_the_body_swallows_the_timer() -> None:
    with pytest.raises(BudgetExceeded), time_budget(0.01):
        # e.g. C code calling back into Python swallows the timer's exception
        with contextlib.suppress(BudgetExceeded):
            time.sleep(0.2)
        time.sleep(0.05)


def test_time_budget_suspends_gc_callbacks_and_restores_them() -> None:
    seen: list[str] = []

    def cb(phase: str, info: dict[str, int]) -> None:
        seen.append(phase)

    gc.callbacks.append(cb)
    try:
        with time_budget(5.0):
            assert cb not in gc.callbacks
            gc.collect()
        assert cb in gc.callbacks and seen == []
    finally:
        gc.callbacks.remove(cb)


def test_proof_verify_runs_theory_torch_code_on_one_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``verify`` checks on one intra-op thread (verdicts must not depend on load), then
    restores the caller's thread count."""
    import torch

    from conserve_verified.commands import verify

    d = _proofs_dir(tmp_path)
    seen: list[int] = []
    real_check_all = verify.check_all

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(torch.get_num_threads())
        return real_check_all(*args, **kwargs)

    monkeypatch.setattr(verify, "check_all", spy)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        main(["verify", "--proofs-dir", str(d), "-k", "ZZ-good", "--timeout", "10"])
        assert seen == [1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
        REGISTRY.pop("ZZ-good", None)
        REGISTRY.pop("ZZ-wrong", None)


def test_proof_verify_names_a_theory_file_that_failed_to_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = _proofs_dir(tmp_path)
    (d / "broken.py").write_text("raise RuntimeError('cannot build this theory')\n")
    try:
        assert main(["verify", "--proofs-dir", str(d), "-k", "no-such-id"]) == 2
        err = capsys.readouterr().err
        assert "broken.py" in err and "cannot build this theory" in err
    finally:
        REGISTRY.pop("ZZ-good", None)
        REGISTRY.pop("ZZ-wrong", None)
