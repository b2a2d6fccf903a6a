"""SMT queries: standard SMT-LIB2 export and two independent solvers (Z3 and cvc5).

Every satisfiability question the engine asks is a :class:`Query` -- a list
of quantifier-free Z3 assertions.  :func:`decide` writes it as standard
SMT-LIB2 (integer powers expanded to products, an explicit ``set-logic``),
hashes that text, optionally saves it under the export folder
(:func:`set_export_dir`), and decides it with

* **Z3**, with the tactic for the logic pinned (``SolverFor("QF_NRA")`` /
  ``"QF_NIRA"``) and a deterministic resource limit (``rlimit``), and
* **cvc5**, reading the exported SMT-LIB2 text itself (so the second solver
  checks exactly the file that is published), with its own resource limit
  (``--rlimit``).

Resource limits, not wall-clock time, decide ``unknown``: the same query
gets the same answer on an idle and on a loaded machine.  A generous
wall-clock limit stays as a safety net only.

Identity: :func:`smtlib` of a query is the same text on every run (it is
what :func:`query_hash` hashes), and ``decide(q).agree`` is false exactly when
one solver says ``sat`` and the other ``unsat``.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import pathlib
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import z3

from ..atomic import atomic_write_text
from ..errors import InvalidArgument

__all__ = [
    "CVC5_RLIMIT",
    "SAFETY_TIMEOUT_S",
    "Z3_RLIMIT",
    "Answer",
    "Decision",
    "Query",
    "cvc5_available",
    "decide",
    "expand_powers",
    "export_dir",
    "query_hash",
    "set_export_dir",
    "smtlib",
]

#: Z3 resource limit per query (``rlimit``); deterministic for a given Z3 version and input.
Z3_RLIMIT = 20_000_000
#: cvc5 resource limit per query (``--rlimit``).
CVC5_RLIMIT = 2_000_000
#: Wall-clock safety net per solver call, in seconds (resource limits decide first).
SAFETY_TIMEOUT_S = 120.0
#: Wall-clock safety net for one cvc5 call.  cvc5 runs in a worker process that is
#: killed at this limit: some nonlinear procedures do not poll their resource limit.
CVC5_SAFETY_S = 10.0
#: The shorter safety net when Z3 already answered ``sat`` (its model is re-checked exactly;
#: cvc5 is then a cross-check that can only reveal a disagreement).
CVC5_SAFETY_SAT_S = 1.0

_EXPORT_DIR: pathlib.Path | None = None


def set_export_dir(path: str | os.PathLike[str] | None) -> None:
    """Save every query's SMT-LIB2 text under ``path`` (``None``: do not save)."""
    global _EXPORT_DIR
    _EXPORT_DIR = None if path is None else pathlib.Path(path)


def export_dir() -> pathlib.Path | None:
    """The folder queries are saved in, or ``None``."""
    return _EXPORT_DIR


def expand_powers(t: z3.ExprRef) -> z3.ExprRef:
    """``t`` with every ``x ** k`` (integer numeral ``0 <= k <= 64``) written as a product.

    Identity: ``expand_powers(t)`` is equivalent to ``t`` and contains no ``^``
    with a numeral exponent, so its SMT-LIB2 form is standard (``^`` is not).
    """
    cache: dict[int, z3.ExprRef] = {}

    def walk(e: z3.ExprRef) -> z3.ExprRef:
        key = e.get_id()
        if key in cache:
            return cache[key]
        if z3.is_quantifier(e):
            raise InvalidArgument("t", str(e), "quantified terms are not supported in queries")
        if not z3.is_app(e) or e.num_args() == 0:
            out = e
        else:
            kids = [walk(c) for c in e.children()]
            if e.decl().kind() == z3.Z3_OP_POWER and _small_int(kids[1]) is not None:
                k = _small_int(kids[1])
                assert k is not None
                base = kids[0]
                if k == 0:
                    out = z3.RealVal(1) if base.is_real() else z3.IntVal(1)
                else:
                    out = base
                    for _ in range(k - 1):
                        out = out * base
            else:
                out = e.decl()(*kids)
        cache[key] = out
        return out

    return walk(t)


def _small_int(e: z3.ExprRef) -> int | None:
    if z3.is_int_value(e):
        v = e.as_long()
    elif z3.is_rational_value(e) and e.denominator_as_long() == 1:
        v = e.numerator_as_long()
    else:
        return None
    return v if 0 <= v <= 64 else None


def _constants(terms: Sequence[z3.ExprRef]) -> list[z3.ExprRef]:
    seen: dict[str, z3.ExprRef] = {}
    stack = list(terms)
    while stack:
        t = stack.pop()
        if z3.is_const(t) and t.decl().kind() == z3.Z3_OP_UNINTERPRETED:
            seen.setdefault(str(t), t)
        else:
            stack.extend(t.children())
    return [seen[k] for k in sorted(seen)]


@dataclass(frozen=True)
class Query:
    """A satisfiability question: is the conjunction of ``assertions`` satisfiable?

    ``role`` says why it is asked (``"hypotheses satisfiable"``, ``"proof"``,
    ``"drop hypothesis 2"``); ``labels`` name the assertions (comments in the text).
    """

    role: str
    assertions: tuple[z3.BoolRef, ...]
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.labels and len(self.labels) != len(self.assertions):
            raise InvalidArgument("labels", self.labels, "needs one label per assertion")

    @property
    def normalised(self) -> tuple[z3.BoolRef, ...]:
        """The assertions with integer powers expanded (:func:`expand_powers`)."""
        return tuple(expand_powers(a) for a in self.assertions)

    @property
    def logic(self) -> str:
        """``QF_NIRA`` if an integer variable occurs, else ``QF_NRA``."""
        ints = any(c.sort() == z3.IntSort() for c in _constants(self.assertions))
        return "QF_NIRA" if ints else "QF_NRA"


def smtlib(query: Query) -> str:
    """Standard SMT-LIB2 text of ``query``: logic, declarations, assertions, ``check-sat``."""
    assertions = query.normalised
    lines = [f"; conserve_verified query: {query.role}", f"(set-logic {query.logic})"]
    for c in _constants(assertions):
        lines.append(f"(declare-fun {c.sexpr()} () {c.sort().sexpr()})")
    for label, a in zip(
        query.labels or tuple(f"a{i}" for i in range(len(assertions))), assertions, strict=True
    ):
        lines.append("; " + " ".join(label.split()))  # one comment line, whatever the label
        lines.append(f"(assert {a.sexpr()})")
    lines.append("(check-sat)")
    return "\n".join(lines) + "\n"


def query_hash(query: Query) -> str:
    """``sha256`` of :func:`smtlib` (stable across runs)."""
    return hashlib.sha256(smtlib(query).encode()).hexdigest()


@dataclass(frozen=True)
class Answer:
    """One solver's answer: ``result`` is ``"sat"``, ``"unsat"``, ``"unknown"`` or ``"error"``."""

    solver: str
    result: str
    reason: str = ""
    time_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON form (certificate)."""
        return {
            "result": self.result,
            "reason": self.reason,
            "time_s": round(self.time_s, 6),
        }


@dataclass(frozen=True)
class Decision:
    """Both solvers' answers to one :class:`Query`, its SMT-LIB2 hash and file."""

    query: Query
    sha256: str
    z3: Answer
    cvc5: Answer
    model: dict[str, Any] | None = None
    file: str | None = None

    @property
    def agree(self) -> bool:
        """False iff one solver says ``sat`` and the other ``unsat``."""
        return {self.z3.result, self.cvc5.result} != {"sat", "unsat"}

    @property
    def unsat_by(self) -> tuple[str, ...]:
        """The solvers that answered ``unsat``."""
        return tuple(a.solver for a in (self.z3, self.cvc5) if a.result == "unsat")

    @property
    def sat_by(self) -> tuple[str, ...]:
        """The solvers that answered ``sat``."""
        return tuple(a.solver for a in (self.z3, self.cvc5) if a.result == "sat")

    def as_dict(self) -> dict[str, Any]:
        """JSON form (certificate): role, logic, SMT-LIB2 hash and file, both answers."""
        out: dict[str, Any] = {
            "role": self.query.role,
            "logic": self.query.logic,
            "sha256": self.sha256,
            "file": self.file,
            "z3": self.z3.as_dict(),
            "cvc5": self.cvc5.as_dict(),
        }
        return out


def cvc5_available() -> bool:
    """Whether the cvc5 Python package is installed."""
    import importlib.util

    return importlib.util.find_spec("cvc5") is not None


def _z3_decide(query: Query, text: str) -> tuple[Answer, dict[str, Any] | None]:
    """Z3's answer to the SMT-LIB2 ``text`` of ``query`` (and its model on ``sat``).

    The text is parsed into a fresh :class:`z3.Context`, so the answer depends on
    the text alone, not on terms created earlier in the process (which would
    shift Z3's internal term ids and with them its search).
    """
    ctx = z3.Context()
    solver = z3.SolverFor(query.logic, ctx=ctx)
    solver.set("rlimit", Z3_RLIMIT)
    solver.set("timeout", int(SAFETY_TIMEOUT_S * 1000))
    solver.add(*z3.parse_smt2_string(text, ctx=ctx))
    start = time.perf_counter()
    result = solver.check()
    elapsed = time.perf_counter() - start
    if result == z3.unsat:
        return Answer("z3", "unsat", time_s=elapsed), None
    if result == z3.sat:
        model = solver.model()
        values = {str(d.name()): model[d] for d in model.decls() if d.arity() == 0}
        return Answer("z3", "sat", time_s=elapsed), values
    reason = solver.reason_unknown()
    return Answer("z3", "unknown", f"z3: {reason} (rlimit {Z3_RLIMIT})", elapsed), None


def _cvc5_answer(text: str) -> tuple[str, str, float]:
    """cvc5's ``(result, reason, seconds)`` for SMT-LIB2 ``text`` (runs in the worker process)."""
    try:
        import cvc5
    except ImportError:
        return "unknown", "cvc5 is not installed", 0.0
    start = time.perf_counter()
    try:
        tm = cvc5.TermManager()
        solver = cvc5.Solver(tm)
        solver.setOption("rlimit", str(CVC5_RLIMIT))
        symbols = cvc5.SymbolManager(tm)
        parser = cvc5.InputParser(solver, symbols)
        parser.setStringInput(
            cvc5.InputLanguage.SMT_LIB_2_6, text.replace("(check-sat)", ""), "query"
        )
        while True:
            cmd = parser.nextCommand()
            if cmd.isNull():
                break
            cmd.invoke(solver, symbols)
        result = solver.checkSat()
    except Exception as exc:  # a parser or solver failure is reported, not raised
        return "error", f"{type(exc).__name__}: {exc}", time.perf_counter() - start
    elapsed = time.perf_counter() - start
    if result.isUnsat():
        return "unsat", "", elapsed
    if result.isSat():
        return "sat", "", elapsed
    return "unknown", f"cvc5: {result.getUnknownExplanation()} (rlimit {CVC5_RLIMIT})", elapsed


def serve_stdio() -> None:  # pragma: no cover - runs in the worker process
    """Worker loop: read JSON-encoded SMT-LIB2 texts (one per line), answer one JSON line each."""
    for line in sys.stdin:
        result = _cvc5_answer(json.loads(line))
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


class _Cvc5Worker:
    """A cvc5 worker subprocess, killed at the safety net and restarted on the next query."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str] = queue.Queue()

    def _start(self) -> None:
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from conserve_verified.proof.smt import serve_stdio; serve_stdio()",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self._lines = queue.Queue()
        out = self._proc.stdout
        assert out is not None
        lines = self._lines

        def pump() -> None:
            for line in out:
                lines.put(line)

        threading.Thread(target=pump, daemon=True).start()

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            for stream in (self._proc.stdin, self._proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        self._proc = None

    def ask(self, text: str, safety_s: float) -> Answer:
        if self._proc is None or self._proc.poll() is not None:
            self._start()
        assert self._proc is not None and self._proc.stdin is not None
        start = time.perf_counter()
        try:
            self._proc.stdin.write(json.dumps(text) + "\n")
            self._proc.stdin.flush()
            line = self._lines.get(timeout=safety_s)
        except (queue.Empty, BrokenPipeError, OSError):
            self.stop()
            return Answer(
                "cvc5",
                "unknown",
                f"cvc5: no answer within its {safety_s:g} s safety net (worker stopped)",
                time.perf_counter() - start,
            )
        result, reason, elapsed = json.loads(line)
        return Answer("cvc5", result, reason, elapsed)


_WORKER = _Cvc5Worker()
atexit.register(_WORKER.stop)


def _cvc5_decide(text: str, safety_s: float = CVC5_SAFETY_S) -> Answer:
    if not cvc5_available():
        return Answer("cvc5", "unknown", "cvc5 is not installed")
    return _WORKER.ask(text, safety_s)


def decide(query: Query, *, second_solver: bool = True) -> Decision:
    """Decide ``query`` with Z3 (its model on ``sat``) and cvc5.

    The SMT-LIB2 text is saved under :func:`export_dir` (if set) as
    ``<sha256[:16]>.smt2``; cvc5 reads that same text.
    """
    text = smtlib(query)
    digest = hashlib.sha256(text.encode()).hexdigest()
    file = None
    if _EXPORT_DIR is not None:
        path = _EXPORT_DIR / f"{digest[:16]}.smt2"
        if not path.exists():
            atomic_write_text(path, text)
        file = path.name
    z3_answer, model = _z3_decide(query, text)
    if not second_solver:
        cvc5_answer = Answer("cvc5", "unknown", "not asked")
    else:
        safety = CVC5_SAFETY_SAT_S if z3_answer.result == "sat" else CVC5_SAFETY_S
        cvc5_answer = _cvc5_decide(text, safety)
    return Decision(query, digest, z3_answer, cvc5_answer, model, file)
