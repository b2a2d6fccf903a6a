"""Theorem pages: one per registered theorem, from the registry and a certificate.

The registry says *what* is claimed (it is what the proofs run from); the
certificate says what the engine concluded in this build.  Before rendering,
:func:`check_certificate` insists that they describe the same theorems with
the same statement hashes, so a page can never pair a statement with the
verdict of a different (older) statement.

Generated files (relative to the generated directory):

* ``theorems/index.rst`` -- summary table of every theorem and the certificate's header;
* ``theorems/<id>.rst`` -- the page of one theorem;
* ``sources/<path>.rst`` and ``sources/<path>`` -- each theory file and property
  test file the pages quote, copied at build time and shown with line numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import InvalidArgument
from . import _rst
from ._sources import function_lines, theorem_lines

__all__ = [
    "check_certificate",
    "claim_evidence",
    "render_theorem_index",
    "render_theorem_page",
    "theorem_pages",
]

_MARK = {True: "✓", False: "✗"}


def check_certificate(certificate: Mapping[str, Any], registry: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidArgument` unless certificate and registry agree.

    Identity: they agree iff both have the same theorem ids and, for every id,
    the same ``statement_hash`` (which covers the id, the expected outcome and
    the canonical claim).
    """
    entries = certificate.get("theorems")
    if not isinstance(entries, list):
        raise InvalidArgument("certificate", type(certificate).__name__, "needs a 'theorems' list")
    cert = {e.get("id"): e for e in entries if isinstance(e, Mapping)}
    missing = [i for i in registry if i not in cert]
    extra = [i for i in cert if i not in registry]
    changed = [
        i
        for i, t in registry.items()
        if i in cert and cert[i].get("statement_hash") != t.statement_hash
    ]
    problems = []
    if missing:
        problems.append(f"no verdict for registered theorems {missing}")
    if extra:
        problems.append(f"verdicts for theorems not in the registry {extra}")
    if changed:
        problems.append(f"statement changed since the certificate was made for {changed}")
    if problems:
        raise InvalidArgument(
            "certificate", certificate.get("created", "?"), "stale: " + "; ".join(problems)
        )


def _status_line(entry: Mapping[str, Any], expected: str | None) -> str:
    verdict = str(entry.get("verdict", "?"))
    text = f"**{_rst.escape(verdict)}** in {float(entry.get('time_s', 0.0)):.3f} s"
    if expected is not None:
        ok = verdict == expected
        text += f" {_MARK[ok]} (expected {_rst.escape(expected)})"
    return text


def _counterexample_table(model: Mapping[str, Any]) -> str:
    rows = [[_rst.inline_literal(str(k)), _rst.inline_literal(str(v))] for k, v in model.items()]
    return _rst.list_table(["variable", "value (exact)"], rows, [30, 70])


def _verdict_details(entry: Mapping[str, Any], depth: int = 0, model_shown: bool = False) -> str:
    """Reason, counterexample (unless shown elsewhere) and, recursively, the parts of a verdict."""
    out = []
    reason = str(entry.get("reason") or "").strip()
    if reason:
        out.append(f"{_rst.escape(reason)}\n")
    model = entry.get("counterexample")
    if isinstance(model, Mapping) and model and not model_shown:
        out.append("Counterexample:\n")
        out.append(_counterexample_table(model))
    for i, part in enumerate(entry.get("parts") or []):
        head = f"Part {i + 1} [{_rst.escape(str(part.get('backend', '')))}]: " + _status_line(
            part, None
        )
        body = _verdict_details(part, depth + 1)
        out.append(_rst.bullet_list([head + ("\n\n" + body if body.strip() else "")]))
    return "\n".join(out)


def _literal_source(page_rel: str, path: str, lines: tuple[int, int] | None) -> str:
    """``literalinclude`` of a copied source file, as seen from page ``page_rel``."""
    depth = len(Path(page_rel).parts) - 1
    rel = "../" * depth + "sources/" + path
    options: list[tuple[str, str]] = [("language", "python")]
    if lines is not None:
        options += [("lines", f"{lines[0]}-{lines[1]}"), ("lineno-start", str(lines[0]))]
    else:
        options.append(("linenos", ""))
    return _rst.directive("literalinclude", rel, options)


def _source_doc(path: str) -> str:
    return "sources/" + path.removesuffix(".py")


def render_theorem_page(
    entry: Mapping[str, Any],
    *,
    source: str | None,
    source_lines: tuple[int, int] | None,
    test_lines: tuple[int, int] | None,
    certificate_meta: str,
    claim_source: str | None = None,
    refutations: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The reST page of one theorem from its certificate entry.

    ``source`` is the theory file relative to the repository (``None`` if
    unknown), ``source_lines``/``test_lines`` the line ranges of the
    ``Theorem(...)`` call and of the property test (``None`` if not found);
    ``refutations`` the certificate entries of the theorems that refute the
    claim this theorem ``corrects`` (linked, with their counterexamples).
    """
    tid = str(entry["id"])
    page = f"theorems/{tid}.rst"
    name = str(entry.get("name", tid))
    expect = str(entry.get("expect", "PROVED"))
    out = [f".. _theorem-{tid}:\n", _rst.heading(f"{tid}: {name}", 1)]

    body = [_rst.escape(str(entry.get("statement", "")))]
    assumptions = [str(a) for a in entry.get("assumptions") or []]
    if assumptions:
        body.append("**Assumptions.**")
        body.append(_rst.bullet_list([_rst.escape(a) for a in assumptions]))
    kind = "prf:conjecture" if expect == "REFUTED" else "prf:theorem"
    label = [("label", f"prf-{tid}")]
    out.append(_rst.directive(kind, _rst.escape(name), label, "\n\n".join(body)))
    if expect == "REFUTED":
        out.append(
            "This statement is **false**: it is registered as a refutation theorem, and the "
            "engine must find a counterexample to it by itself.\n"
        )

    out.append(_rst.heading("Symbolic statement", 2))
    latex = str(entry.get("latex") or "").strip()
    out.append(_rst.math_block(latex) if latex else "No LaTeX form was recorded.\n")

    out.append(_rst.heading("Verdict", 2))
    scope = entry.get("scope") or {}
    fields = [
        ("Verdict", _status_line(entry, expect)),
        (
            "Scope",
            f"**{_rst.escape(str(scope.get('kind', 'unknown')))}** -- "
            f"{_rst.escape(str(scope.get('detail', '')))}",
        ),
        ("Solvers", _rst.escape(", ".join(_solvers_of(entry)) or "none (no SMT query)")),
        ("Backend", _rst.inline_literal(str(entry.get("backend", "")))),
        ("Theory", _rst.escape(str(entry.get("theory", "")))),
        ("Statement hash", _rst.inline_literal(str(entry.get("statement_hash", "")))),
        ("Certificate", certificate_meta),
    ]
    out.append(_rst.field_list(fields))
    if entry.get("verdict") != expect:
        out.append(
            _rst.directive(
                "warning",
                body=f"The engine did not reach the expected verdict {_rst.escape(expect)} in "
                "this build.",
            )
        )
    refutes = entry.get("refutes")
    shown_below = isinstance(refutes, Mapping) and entry.get("verdict") == "REFUTED"
    details = _verdict_details(entry, model_shown=shown_below)
    if details.strip():
        out.append(details)

    if isinstance(refutes, Mapping):
        cid = str(refutes.get("claim", "?"))
        out.append(_rst.heading(f"The refuted paper claim {cid}", 2))
        quoted = _rst.escape(str(refutes.get("text", "")))
        where = f" ({_rst.escape(claim_source)})" if claim_source else ""
        out.append(_rst.directive("epigraph", body=f"“{quoted}”\n\n-- claim {cid}{where}"))
        model = entry.get("counterexample")
        if entry.get("verdict") == "REFUTED":
            out.append(
                f"The engine refuted claim {_rst.escape(cid)}: it found the counterexample "
                "below itself and re-checked it concretely in exact arithmetic before "
                "reporting it.\n"
            )
            if isinstance(model, Mapping) and model:
                out.append(_counterexample_table(model))
        else:
            out.append(
                f"The engine did **not** refute claim {_rst.escape(cid)} in this build "
                f"(verdict {_rst.escape(str(entry.get('verdict')))}).\n"
            )

    corrects = entry.get("corrects")
    if corrects:
        out.append(_rst.heading(f"The paper claim {corrects} it corrects", 2))
        if refutations:
            out.append(
                f"Claim {_rst.escape(str(corrects))} as stated is false; the engine refutes "
                "it itself:\n"
            )
            for r in refutations:
                rid = str(r["id"])
                out.append(
                    f"* :ref:`{_rst.escape(rid)} <theorem-{rid}>` "
                    f"({_rst.escape(str(r.get('name', '')))}): {_status_line(r, 'REFUTED')}\n"
                )
                model = r.get("counterexample")
                if r.get("verdict") == "REFUTED" and isinstance(model, Mapping) and model:
                    out.append(_counterexample_table(model))
        else:
            out.append("No refutation theorem of this claim is registered.\n")

    mutants = list(entry.get("mutants") or [])
    out.append(_rst.heading("Mutants", 2))
    if not mutants:
        out.append("This theorem has no mutants.\n")
    for m in mutants:
        mid = str(m.get("id", "?"))
        out.append(f".. rubric:: Mutant {_rst.inline_literal(mid)}\n")
        out.append(f"{_rst.escape(str(m.get('description', '')))}\n")
        mlatex = str(m.get("latex") or "").strip()
        if mlatex:
            out.append(_rst.math_block(mlatex))
        out.append(f"Verdict: {_status_line(m, 'REFUTED')}\n")
        mdetails = _verdict_details(m)
        if mdetails.strip():
            out.append(mdetails)

    out.append(_rst.heading("Numeric twin", 2))
    test = str(entry.get("property_test", ""))
    out.append(
        f"The property test {_rst.inline_literal(test)} checks the same statement on the "
        "torch implementation with Hypothesis.\n"
    )
    test_path = test.split("::")[0]
    if test_lines is not None:
        out.append(_literal_source(page, test_path, test_lines))
    else:
        out.append(_rst.directive("warning", body="The property test was not found."))

    out.append(_rst.heading("Source", 2))
    if source is None:
        out.append("The theory file of this theorem is not known.\n")
    else:
        out.append(
            f"Registered in :doc:`{_rst.escape(source)} </generated/{_source_doc(source)}>`.\n"
        )
        if source_lines is not None:
            out.append(_literal_source(page, source, source_lines))
    return "\n".join(out)


def _certificate_meta(certificate: Mapping[str, Any]) -> str:
    versions = certificate.get("versions") or {}
    libs = ", ".join(f"{k} {v}" for k, v in versions.items())
    timeout = certificate.get("timeout_s")
    return (
        ":download:`certificate.json </generated/certificate.json>` created "
        f"{_rst.escape(str(certificate.get('created', '?')))}"
        + (f", timeout {float(timeout):g} s per claim" if timeout is not None else "")
        + (f" ({_rst.escape(libs)})" if libs else "")
    )


def _solvers_of(entry: Mapping[str, Any]) -> list[str]:
    """Solvers behind the SMT parts of a verdict: ``z3+cvc5`` or ``z3 only`` per part kind."""
    seen: set[str] = set()

    def walk(v: Mapping[str, Any]) -> None:
        solvers = v.get("solvers") or []
        if solvers:
            seen.add("+".join(solvers) if len(solvers) > 1 else f"{solvers[0]} only")
        for p in v.get("parts") or []:
            walk(p)

    walk(entry)
    return sorted(seen)


def render_theorem_index(certificate: Mapping[str, Any]) -> str:
    """Summary of every theorem: verdict, time, mutants refuted, and the toctree."""
    entries = list(certificate.get("theorems") or [])
    rows = []
    for e in entries:
        tid = str(e["id"])
        mutants = list(e.get("mutants") or [])
        killed = sum(1 for m in mutants if m.get("verdict") == "REFUTED")
        rows.append(
            [
                f":ref:`{_rst.escape(tid)} <theorem-{tid}>`",
                _rst.escape(str(e.get("name", ""))),
                _rst.escape(str(e.get("theory", ""))),
                _rst.escape(str((e.get("scope") or {}).get("kind", "?"))),
                _rst.inline_literal(str(e.get("backend", ""))),
                _status_line(e, str(e.get("expect", "PROVED"))),
                f"{killed}/{len(mutants)} refuted",
            ]
        )
    ok = bool(certificate.get("ok")) and all(e.get("ok") for e in entries)
    out = [
        _rst.heading("Theorems", 1),
        "Every theorem the proof engine knows, with the verdict it reached while this "
        "documentation was built.  A theorem is as expected when its claim is "
        "**PROVED** (or, for a refutation theorem, **REFUTED** with a counterexample), "
        "and every mutant -- a plausible wrong variant -- is **REFUTED**.\n",
        _rst.field_list(
            [
                ("Theorems", str(len(entries))),
                ("All as expected", f"{_MARK[ok]} {'yes' if ok else 'no'}"),
                ("Certificate", _certificate_meta(certificate)),
            ]
        ),
    ]
    if rows:
        out.append(
            _rst.list_table(
                ["id", "name", "theory", "scope", "backend", "verdict", "mutants"],
                rows,
                [8, 28, 11, 9, 11, 22, 11],
            )
        )
    else:
        out.append("No theorem is registered.\n")
    out.append(
        _rst.directive(
            "toctree",
            options=[("hidden", ""), ("maxdepth", "1")],
            body="\n".join(str(e["id"]) for e in entries) or " ",
        )
    )
    return "\n".join(out)


def _source_page(path: str) -> str:
    name = Path(path).name
    return (
        ":orphan:\n\n"
        + _rst.heading(path, 1)
        + "\n"
        + _rst.directive("literalinclude", name, [("language", "python"), ("linenos", "")])
    )


def theorem_pages(
    certificate: Mapping[str, Any],
    registry: Mapping[str, Any],
    repo: Path,
    claims: Mapping[str, Any] | None = None,
) -> dict[str, str | bytes]:
    """Every theorem page, the index and the quoted sources (after :func:`check_certificate`).

    ``registry`` maps ids to :class:`~conserve_verified.proof.Theorem` objects;
    ``repo`` is the repository root the source paths are relative to.
    """
    check_certificate(certificate, registry)
    sources = (claims or {}).get("sources", {})
    claim_source = {
        c["id"]: sources.get(c.get("source"), c.get("source"))
        for c in (claims or {}).get("claims", [])
    }
    meta = _certificate_meta(certificate)
    out: dict[str, str | bytes] = {"theorems/index.rst": render_theorem_index(certificate)}
    refuting: dict[str, list[Mapping[str, Any]]] = {}
    for e in certificate["theorems"]:
        if isinstance(e.get("refutes"), Mapping):
            refuting.setdefault(str(e["refutes"].get("claim")), []).append(e)
    quoted: set[str] = set()
    for entry in certificate["theorems"]:
        tid = str(entry["id"])
        theorem = registry[tid]
        source = _repo_relative(getattr(theorem, "source", "") or "", repo)
        source_lines = theorem_lines(repo / source, tid) if source else None
        test = str(entry.get("property_test", ""))
        test_path, _, test_name = test.partition("::")
        test_lines = function_lines(repo / test_path, test_name) if test_path else None
        refutes = entry.get("refutes")
        cid = refutes.get("claim") if isinstance(refutes, Mapping) else None
        out[f"theorems/{tid}.rst"] = render_theorem_page(
            entry,
            source=source,
            source_lines=source_lines,
            test_lines=test_lines,
            certificate_meta=meta,
            claim_source=claim_source.get(cid) if cid else None,
            refutations=refuting.get(str(entry.get("corrects")), []),
        )
        if source:
            quoted.add(source)
        if test_lines is not None:
            quoted.add(test_path)
    for path in sorted(quoted):
        out[f"sources/{path}"] = (repo / path).read_bytes()
        out[f"{_source_doc(path)}.rst"] = _source_page(path)
    return out


def _repo_relative(path: str, repo: Path) -> str | None:
    if not path:
        return None
    p = Path(path).resolve()
    try:
        return p.relative_to(repo.resolve()).as_posix()
    except ValueError:
        return None


def claim_evidence(
    certificate: Mapping[str, Any], theories_of_claims: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """Per claim id, reST lines naming the theorems that speak to it, with their verdicts.

    A theorem that ``refutes`` a claim speaks to it; so does every theorem of a
    theory listed for the claim in ``theories_of_claims``.
    """
    out: dict[str, list[str]] = {}
    for e in certificate.get("theorems") or []:
        tid = str(e["id"])
        link = f":ref:`{_rst.escape(tid)} <theorem-{tid}>`"
        refutes = e.get("refutes")
        if isinstance(refutes, Mapping):
            verdict = str(e.get("verdict"))
            text = (
                f"**false as stated**: refuted by {link} with a counterexample the engine found"
                if verdict == "REFUTED"
                else f"{link} did not refute it in this build ({_rst.escape(verdict)})"
            )
            out.setdefault(str(refutes.get("claim")), []).append(text)
        for cid, theories in theories_of_claims.items():
            if e.get("theory") in theories and e.get("expect") == "PROVED":
                out.setdefault(cid, []).append(
                    f"{link} {_rst.escape(str(e.get('name', '')))}: " + _status_line(e, "PROVED")
                )
    return out
