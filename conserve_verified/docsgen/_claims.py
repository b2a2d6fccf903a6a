"""The claims table of the landing page: each paper's figure next to our verdict.

Input is the claims file (``claims.json``: ``sources`` and a list of
``claims``) and, per claim id, already-formatted reST describing our evidence
(a theorem verdict, a measured number); a claim without evidence says so
rather than showing a number we do not have.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import InvalidArgument
from . import _rst
from ._paths import shared_claims_path

__all__ = [
    "NO_EVIDENCE",
    "VERDICT_RULES",
    "claims_path",
    "describe_figure",
    "load_claims",
    "render_claims_table",
]

#: Cell text for a claim that nothing in the latest build speaks to.
NO_EVIDENCE = "not measured in this build (run ``bash dev.sh main``, then rebuild the docs)"


#: The verdict taxonomy (the same rules as :mod:`conserve_verified.runner.verdict`), as reST.
VERDICT_RULES = (
    "Verdicts use 95% confidence intervals; *significant* means p < 0.05 after Holm's "
    "correction over the rows of one claim on one dataset. A wide interval can never "
    "reproduce a claim.\n\n"
    "- **reproduced**: the paper's value lies in our CI *and* the CI excludes no effect "
    "(for a claimed non-effect: the CI lies inside the stated ±margin; for a level: inside "
    "±margin of the paper's value when a margin is stated).\n"
    "- **consistent but inconclusive**: the CI contains the paper's value but is too wide "
    "to tell.\n"
    "- **smaller** / **larger**: significant, same sign, the CI entirely below / above the "
    "paper's value.\n"
    "- **not reproduced**: no significant effect, and the CI excludes the paper's value.\n"
    "- **reversed**: significant, with the opposite sign.\n"
    "- **refuted**: the proof engine found a counterexample (claim B); **proved**: the "
    "corrected statement holds, with its scope.\n"
    "- **grid too small for a verdict**: fewer than two seeds per arm, or no CI (the smoke "
    "profile).\n\n"
    "Rows marked *effect* compare arms (differences), which is how a claim made on another "
    "dataset (CIFAR-10, MNIST) is checked on ours; rows marked *level* compare one arm's "
    "level with the paper's.\n"
)


def claims_path() -> Path:
    """The claims file: the copy shipped in the package if present, else ``shared/``."""
    shipped = Path(__file__).resolve().parents[1] / "runner" / "claims.json"
    if shipped.is_file():
        return shipped
    shared = shared_claims_path()
    if shared.is_file():
        return shared
    raise InvalidArgument(
        "claims.json", str(shipped), f"not found (neither in the package nor at {shared})"
    )


def load_claims(path: Path | None = None) -> dict[str, Any]:
    """Parse and check the claims file (default: :func:`claims_path`)."""
    path = claims_path() if path is None else Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidArgument("claims", str(path), f"cannot be read as JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("claims"), list):
        raise InvalidArgument("claims", str(path), "needs a top-level 'claims' list")
    for i, claim in enumerate(data["claims"]):
        if not isinstance(claim, dict) or not isinstance(claim.get("id"), str):
            raise InvalidArgument(f"claims[{i}]", claim, "needs a string 'id'")
    return data


def _value(v: Any) -> str:
    if isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
        return f"{v[0]:g} ± {v[1]:g}"
    if isinstance(v, list):
        return "–".join(f"{x:g}" if isinstance(x, (int, float)) else str(x) for x in v)
    return f"{v:g}" if isinstance(v, (int, float)) else str(v)


def describe_figure(claim: Mapping[str, Any]) -> str:
    """The paper's figure of one claim as plain text (numbers, metric and setting)."""
    parts: list[str] = []
    values = claim.get("values")
    if isinstance(values, Mapping):
        parts.append("; ".join(f"{k.replace('_', ' ')}: {_value(v)}" for k, v in values.items()))
    for key in ("statement", "statements"):
        text = claim.get(key)
        if isinstance(text, str):
            parts.append(f"“{text}”")
        elif isinstance(text, list):
            parts.append("; ".join(f"“{t}”" for t in text))
    setting = [
        f"{key.replace('_', ' ')}: {_value(claim[key])}"
        for key in (
            "metric",
            "dataset",
            "model",
            "setting",
            "noise",
            "sigma",
            "depths",
            "seeds",
            "runs",
            "trials_per_cell",
            "experiments",
            "seeds_per_config",
        )
        if key in claim
    ]
    if "p_value_below" in claim:
        setting.append(f"p < {claim['p_value_below']:g}")
    if setting:
        parts.append("(" + ", ".join(setting) + ")")
    if isinstance(claim.get("note"), str):
        parts.append(claim["note"])
    return " ".join(parts)


def render_claims_table(
    claims: Mapping[str, Any], evidence: Mapping[str, Sequence[str]] | None = None
) -> str:
    """A ``list-table``: id, source, the paper's figure, our evidence (reST cells)."""
    evidence = evidence or {}
    sources = claims.get("sources", {})
    rows = []
    for claim in claims["claims"]:
        cid = claim["id"]
        source = sources.get(claim.get("source"), claim.get("source", ""))
        ours = evidence.get(cid) or [NO_EVIDENCE]
        rows.append(
            [
                f"**{_rst.escape(cid)}**",
                _rst.escape(str(source)),
                _rst.escape(describe_figure(claim)),
                _rst.bullet_list(list(ours)) if len(ours) > 1 else ours[0],
            ]
        )
    table = _rst.list_table(
        ["claim", "paper", "the paper's figure", "our verdict / number"], rows, [6, 20, 37, 37]
    )
    return VERDICT_RULES + "\n" + table
