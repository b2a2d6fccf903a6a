"""Bad proofs: each is a regression test that must NOT come out PROVED.

The engine's PROVED must mean proved: not vacuously (contradictory, empty or
degenerate hypotheses), not through an induction whose base and step are
about different statements, not through a checker outside the engine, and not
through a symbolic reducer that captures variables of nested sums.
"""

from __future__ import annotations

import sys

import pytest
import sympy as sp
import z3

from conserve_verified.errors import InvalidArgument, InvalidArgumentType
from conserve_verified.proof import (
    Induction,
    InnerProductSpace,
    Status,
    Verdict,
    canonical_dummies,
    check_claim,
    custom,
    gram_identity,
    induction,
    select,
    source_hash,
    sum_identity,
    z3_implies,
)
from conserve_verified.proof.sums import sum_normal_form

x, y = z3.Reals("x y")
k = z3.Int("k")


def test_contradictory_hypotheses_are_error_not_proved() -> None:
    v = check_claim(z3_implies([x > 0, x < 0], x == 42), 10)
    assert v.status is Status.ERROR and "vacuous" in v.reason


def test_int_sort_empty_range_is_error_not_proved() -> None:
    v = check_claim(z3_implies([k > 0, k < 1], z3.BoolVal(False)), 10)
    assert v.status is Status.ERROR and "unsatisfiable" in v.reason


def test_degenerate_hypotheses_are_error_not_proved() -> None:
    # x^2 < 0 has no real solution: the implication says nothing
    assert check_claim(z3_implies([x * x < 0], x == 1), 10).status is Status.ERROR
    # r > 0 and r = 0 together
    assert check_claim(z3_implies([y > 0, y == 0], x == y), 10).status is Status.ERROR


def test_satisfiable_hypotheses_record_a_rechecked_witness() -> None:
    v = check_claim(z3_implies([x > 1], x * x > 1), 10)
    assert v.status is Status.PROVED
    witness = {name: sp.Rational(value) for name, value in v.details["witness"].items()}
    assert witness["x"] > 1


def test_unused_hypotheses_are_listed_and_drop_one_necessity_reported() -> None:
    v = check_claim(z3_implies([x > 1, y > 7], x > 0), 10)
    assert v.status is Status.PROVED
    assert v.details["unused_hypotheses"] == ["h1: y > 7"]
    assert v.details["necessary"] == {"h0: x > 1": "necessary", "h1: y > 7": "not necessary"}
    assert "unused hypotheses" in v.reason


def test_conclusion_true_without_hypotheses_lists_every_hypothesis_unused() -> None:
    # the old A2: the clamp is >= 0 whatever lam and eta are
    lam, eta = z3.Reals("lam eta")
    step = lam + eta
    v = check_claim(z3_implies([lam >= 0, eta > 0], z3.If(step > 0, step, 0) >= 0), 10)
    assert v.status is Status.PROVED
    assert len(v.details["unused_hypotheses"]) == 2 and v.details["unsat_core"] == []


def test_induction_is_built_from_one_predicate_only() -> None:
    # an induction cannot be assembled from a base and a step about different statements
    with pytest.raises(TypeError):
        induction(base=z3_implies([], x == x), step=z3_implies([], y == y))  # type: ignore[call-arg]
    with pytest.raises(InvalidArgumentType, match="k"):
        Induction(x, [y], lambda _k, st: st[0] >= 0, [z3.RealVal(0)], lambda _k, st: [st[0]])


def test_induction_with_a_false_base_is_refuted() -> None:
    v = check_claim(
        induction(
            k=k,
            state=[x],
            predicate=lambda _k, st: st[0] >= 1,
            init=[z3.RealVal(0)],  # P(0) is false
            transition=lambda _k, st: [st[0] + 1],
        ),
        10,
    )
    assert v.status is Status.REFUTED


def test_induction_step_that_ignores_its_hypothesis_is_flagged() -> None:
    # P(k): V_k >= 0 with V_{k+1} = V_k^2: the step needs no induction hypothesis
    v = check_claim(
        induction(
            k=k,
            state=[x],
            predicate=lambda _k, st: st[0] >= 0,
            init=[z3.RealVal(0)],
            transition=lambda _k, st: [st[0] * st[0]],
        ),
        10,
    )
    assert v.status is Status.PROVED
    assert v.details["induction_hypothesis_used"] is False
    assert "does not use the induction hypothesis" in v.reason


def test_induction_step_with_unsatisfiable_hypothesis_is_not_proved() -> None:
    v = check_claim(
        induction(
            k=k,
            state=[x],
            predicate=lambda _k, st: z3.And(st[0] > 0, st[0] < 0),  # P(k) is empty
            init=[z3.RealVal(0)],
            transition=lambda _k, st: [st[0]],
        ),
        10,
    )
    assert v.status is not Status.PROVED


def test_blind_custom_proved_outside_the_engine_is_error() -> None:
    def blind(timeout_s: float) -> Verdict:
        return Verdict(Status.PROVED, "trust me")

    v = check_claim(custom(blind, latex="1 = 2", description="blind"), 5)
    assert v.status is Status.ERROR and "outside the proof engine" in v.reason


def test_custom_hash_covers_the_function_source() -> None:
    def says_proved(timeout_s: float) -> Verdict:
        return Verdict(Status.PROVED, "p")

    def says_refuted(timeout_s: float) -> Verdict:
        return Verdict(Status.REFUTED, "r")

    says_refuted.__qualname__ = says_proved.__qualname__  # same name, different code
    a = custom(says_proved, latex="x", description="d")
    b = custom(says_refuted, latex="x", description="d")
    assert source_hash(says_proved) != source_hash(says_refuted)
    assert a.statement_hash() != b.statement_hash()


def test_nested_sum_capture_identity_is_refuted_not_proved() -> None:
    n = sp.Symbol("n", integer=True, positive=True)
    i, kk = sp.symbols("i k", integer=True)
    W, X = sp.IndexedBase("W"), sp.IndexedBase("x")
    phi = sp.Function("phi")
    # false: value 1 at n = 2 for suitable entries
    false = sp.Sum(phi(sp.Sum(W[kk, i] * X[i], (i, 1, n))), (kk, 1, n)) - n * phi(
        sp.Sum(W[i, i] * X[i], (i, 1, n))
    )
    v = check_claim(sum_identity(false, 0, sizes=(n,), latex="capture"), 30)
    assert v.status is Status.REFUTED
    # the renaming keeps nested indices apart
    canon = canonical_dummies(false)
    inner = [s for s in canon.atoms(sp.Sum) if s.has(W) and s.function.has(W)]
    assert any(len({*s.free_symbols} & {*s.variables}) == 0 for s in inner)


def test_canonical_dummies_alpha_equivalent_sums_compare_equal() -> None:
    n = sp.Symbol("n", integer=True, positive=True)
    i, j = sp.symbols("i j", integer=True)
    w = sp.IndexedBase("w")
    assert canonical_dummies(sp.Sum(w[i], (i, 1, n))) == canonical_dummies(sp.Sum(w[j], (j, 1, n)))


def test_sum_normal_form_collapses_kronecker_delta_and_squares() -> None:
    n = sp.Symbol("n", integer=True, positive=True)
    i, j = sp.symbols("i j", integer=True)
    w = sp.IndexedBase("w")
    double = sp.Sum(sp.Sum(w[i] * w[j] * sp.KroneckerDelta(i, j), (j, 1, n)), (i, 1, n))
    diff = sum_normal_form(double - sp.Sum(w[i] ** 2, (i, 1, n)))
    assert sp.expand(canonical_dummies(diff)) == 0
    pairs = sp.Sum(sp.Sum(w[i] * w[j], (j, 1, n)), (i, 1, n))
    square = sum_normal_form(sp.Sum(w[i], (i, 1, n)) ** 2 - pairs)
    assert sp.expand(canonical_dummies(square)) == 0


def test_gram_identity_false_in_some_dimension_is_refuted() -> None:
    space = InnerProductSpace("s", "n")
    s, n = space.vectors()
    # ||s + n||^2 = ||s||^2 + ||n||^2 holds only for orthogonal s, n
    v = check_claim(
        gram_identity(space, space.energy(s + n), space.energy(s) + space.energy(n), latex="p"),
        10,
    )
    assert v.status is Status.REFUTED and "dimension" in v.counterexample


def test_select_matches_ids_before_names() -> None:
    from conserve_verified.proof import REGISTRY, load_theories

    load_theories()
    chosen = [t.id for t in select(REGISTRY.values(), "T1")]
    assert chosen == ["T1"]
    assert [t.id for t in select(REGISTRY.values(), "T5*")] == ["T5a", "T5b", "T5"]
    assert select(REGISTRY.values(), "no-such-theorem-anywhere") == []


def test_engine_imports_no_torch() -> None:
    import subprocess

    code = (
        "import sys, conserve_verified.proof, conserve_verified.proof.certificate;"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_invalid_scope_is_a_typed_error() -> None:
    from conserve_verified.proof import Scope

    with pytest.raises(InvalidArgument, match="kind"):
        Scope("sometimes", "x")
    with pytest.raises(InvalidArgument, match="detail"):
        Scope("general", " ")


def test_smtlib_is_standard_and_parses_with_multiline_labels() -> None:
    from conserve_verified.proof.smt import Query, decide, smtlib

    long = z3.And(*[x * x + i * y > -100 for i in range(12)])  # prints over several lines
    text = smtlib(Query("labels", (long, x**3 > 1), (str(long), "cube")))
    assert "^" not in text and text.count("(assert") == 2
    assert len(z3.parse_smt2_string(text, ctx=z3.Context())) == 2
    d = decide(Query("labels", (long, x**3 > 1), (str(long), "cube")))
    assert d.z3.result == "sat" and d.cvc5.result in ("sat", "unknown")


def test_checker_arguments_are_typed_errors_naming_the_argument() -> None:
    from conserve_verified.proof.smt import Query

    space = InnerProductSpace("v")
    (v,) = space.vectors()
    with pytest.raises(InvalidArgument, match="dimensions"):
        gram_identity(space, space.energy(v), space.energy(v), latex="x", dimensions=(0,))
    with pytest.raises(InvalidArgument, match="rhs"):
        gram_identity(space, v, space.energy(v), latex="x")
    with pytest.raises(InvalidArgument, match="names"):
        InnerProductSpace("v", "v")
    n = sp.Symbol("n", integer=True, positive=True)
    with pytest.raises(InvalidArgumentType, match="sizes"):
        sum_identity(n, n, sizes=(sp.Symbol("m"),), latex="x")
    with pytest.raises(InvalidArgument, match="init"):
        induction(
            k=k,
            state=[x],
            predicate=lambda _k, st: st[0] >= 0,
            init=[],
            transition=lambda _k, st: st,
        )
    with pytest.raises(InvalidArgument, match="labels"):
        Query("q", (x > 0,), ("a", "b"))
    with pytest.raises(InvalidArgument, match="labels"):
        z3_implies([x > 0], x > -1, labels=["one", "two"])
