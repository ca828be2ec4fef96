"""The claims ledger: the paper's twelve claims, the checks the chapters computed for them, one verdict per claim.

A chapter turns its :class:`~flatrob.checks.Check` results into entries
(:func:`entry`) and records them in ``data/claims/<chapter>.json``
(:func:`record`); :func:`build` merges all chapters into ``data/claims.json``,
combining several checks of one claim (:func:`combine`). Files are rewritten
only when a verdict or a value changes, so that rebuilding an unchanged book
leaves the repository clean.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from flatrob.checks import VERDICTS, Check, combine
from flatrob.provenance import atomic_write_text, repo_root

__all__ = [
    "CLAIMS",
    "LEDGER_ENV",
    "NOT_TESTED",
    "ROWS",
    "build",
    "combine",
    "entry",
    "ledger_table",
    "record",
    "rows_table",
]

#: The twelve claims of the paper the book checks (paper digest, section 6), with the paper's value or shape.
#: Math is written for MathJax, between \( and \), so the report typesets it.
CLAIMS: dict[int, tuple[str, str]] = {
    1: (r"The closed-form last-layer Hessian \(H = (\operatorname{diag} p - p p^\top) \otimes \phi\phi^\top\) equals the "
        r"autograd Hessian and is label independent.", "identity"),
    2: (r"Layer-wise and neuron-wise relative sharpness have the closed forms "
        r"\(\kappa = \|W\|_F^2 (1 - \|p\|^2) \|\phi\|^2\) and \(\|\phi\|^2 \operatorname{tr} \operatorname{Cov}_{s \sim p}(w_s)\).",
        "identities"),
    3: (r"A loss change above \(\log k\) forces a label flip; the converse fails.", "proof + two counterexamples"),
    4: (r"Bridging lemma: \(\phi(\xi) = \phi(x) + \Delta A \phi(x)\) with \(A\) orthogonal and \(\Delta \le L\delta / r\).",
        "inequality"),
    5: (r"The local bound \(\ell(\xi) - \ell(x) \le \frac{\delta^2 L^2 \kappa}{2 r^2} + c\,\delta^3\) holds for small "
        r"\(\delta\).", r"\(c = k m L^6 / (24 r^3)\)"),
    6: ("Uncanny valley: along PGD, sharpness rises, peaks near the flip, then collapses.", "rise, peak, collapse (row E)"),
    7: ("Adversarial training shifts the valley and widens the low-loss basin.",
        r"about 20x more PGD-\(\ell_2\) steps before the loss rises; \(\operatorname{Tr} H\) at clean points about 0.6 "
        "(clean) vs 1.0 (AT) (row B)"),
    8: (r"Relative sharpness falls monotonically with the last-layer scale \(s\).",
        "falls with s; 90.33% accuracy under the weak attack at s = 1 (row A)"),
    9: (r"Gradient masking: PGD robust accuracy rises with \(s\) while transfer and gradient-free attacks still succeed.",
        "0% at s = 1 to 93% at s = 100; 100% transfer (rows C, D); the predecessor's ResNet-18: 93.88% clean, 0.01% "
        "under PGD-linf 8/255"),
    10: ("Confidently wrong points are flat.", "shape"),
    11: ("A one-threshold stump on sharpness separates clean from adversarial inputs.", "accuracy 0.92-0.93 (row F)"),
    12: (r"Whether \(\|\phi\|\) stays constant along a trajectory (a reviewer's alternative explanation).",
         "open question"),
}

#: The paper's experiments (digest section 5): row -> (question, the claim its checks feed, the chapter that re-runs
#: it, the paper's numbers).
ROWS: dict[str, tuple[str, int, str, str]] = {
    "A": ("flatness (by last-layer scaling) reduces local loss growth", 8, "last-layer-scaling",
          "sharpness falls with s; loss increases concentrate near 0; 90.33% accuracy under the weak attack"),
    "B": ("adversarial training widens the low-loss basin", 7, "basin",
          r"about 20x more iterations; \(\operatorname{Tr} H\) about 0.6 (clean) vs 1.0 (AT)"),
    "C": ("flatness by scaling masks gradients", 9, "gradient-masking", "robust accuracy 0% at s = 1, 93% at s = 100"),
    "D": ("... but examples made at s = 1 still transfer", 9, "gradient-masking", "100% transfer"),
    "E": ("the uncanny valley along PGD trajectories", 6, "uncanny-valley",
          "rise, peak near the flip, collapse; AT shifts the valley"),
    "F": ("sharpness as a detector of adversarial inputs", 11, "detector", "stump accuracy 0.92-0.93 (WRN-28-4)"),
}

#: The verdict of a claim no chapter has checked.
NOT_TESTED = "not tested yet"

#: Set FLATROB_LEDGER=1 (``make book`` does) to let the chapters write their ledger entries under data/claims/.
LEDGER_ENV = "FLATROB_LEDGER"

#: Provenance fields that change on every run without changing a result: ignored when deciding to rewrite.
_VOLATILE = ("commit", "time_utc", "duration_s")


def entry(check: Check, setting: dict[str, Any] | str, chapter: str, provenance: dict[str, Any]) -> dict[str, Any]:
    """The ledger entry of one check: its claim, verdict, evidence, the paper's number, the setting that made it
    ({"data", "model", "attack", ...} or a sentence), and provenance."""
    if check.claim not in CLAIMS:
        raise ValueError(f"claim must be one of {sorted(CLAIMS)}; got {check.claim}")
    if check.verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}; got {check.verdict!r}")
    statement, paper = CLAIMS[check.claim]
    return {"id": check.claim, "check": check.id, "statement": statement, "paper": check.paper or paper,
            "setting": setting, "ours": check.evidence, "verdict": check.verdict, "chapter": chapter,
            "values": check.values, "provenance": provenance}


def _ledger_dir(root: Path | None) -> Path:
    return (root or repo_root()) / "data" / "claims"


def _stable(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries as JSON would hold them, without the provenance fields that change on every run."""
    plain = json.loads(json.dumps(entries, default=str))
    for e in plain:
        for key in _VOLATILE:
            e.get("provenance", {}).pop(key, None)
    return plain


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str) + "\n"


def record(chapter: str, entries: list[dict[str, Any]], *, root: Path | None = None, force: bool = False) -> Path | None:
    """Write a chapter's entries to data/claims/<chapter>.json when FLATROB_LEDGER=1 (or ``force``).

    Test runs with small parameters leave the ledger alone. The file is rewritten
    only when a verdict, a value or a setting differs from what it holds (the
    commit and time of a re-run alone change nothing). Returns the path written, or None.
    """
    if not force and os.environ.get(LEDGER_ENV) != "1":
        return None
    path = _ledger_dir(root) / f"{chapter}.json"
    if path.exists():
        try:
            if _stable(json.loads(path.read_text())) == _stable(entries):
                return None
        except json.JSONDecodeError:
            pass  # an unreadable file is replaced
    return atomic_write_text(path, _dumps(entries))


def build(root: Path | None = None, *, write: bool = True) -> list[dict[str, Any]]:
    """Merge data/claims/*.json into one entry per claim (data/claims.json); claims without entries say so.

    Several entries for one claim (from several chapters) are kept as a list
    ``checks`` and combined by :func:`combine`. The file is written only when its text changes.
    """
    by_claim: dict[int, list[dict[str, Any]]] = {c: [] for c in CLAIMS}
    folder = _ledger_dir(root)
    for f in sorted(folder.glob("*.json")) if folder.exists() else []:
        for e in json.loads(f.read_text()):
            by_claim[int(e["id"])].append(e)
    ledger = []
    for c, (statement, paper) in CLAIMS.items():
        found = by_claim[c]
        ledger.append({
            "id": c, "statement": statement, "paper": paper,
            "verdict": combine([e["verdict"] for e in found]) if found else NOT_TESTED,
            "checks": found,
        })
    target = folder.parent / "claims.json"
    text = _dumps(ledger)
    if write and (not target.exists() or target.read_text() != text):
        atomic_write_text(target, text)
    return ledger


def ledger_table(ledger: list[dict[str, Any]]) -> pd.DataFrame:
    """The ledger as a table: one row per check (claims without checks get one row)."""
    rows = []
    for e in ledger:
        for chk in e["checks"] or [None]:
            prov = (chk or {}).get("provenance", {})
            setting = (chk or {}).get("setting", "")
            if not isinstance(setting, dict):
                setting = {"details": setting}
            values = (chk or {}).get("values", {})
            seed = prov.get("params", {}).get("seed")
            seeds = (f"{values['seeds']}" if "seeds" in values and "sweep" in values
                     else (f"1 (seed {seed})" if seed is not None else ("1" if chk else "")))
            rows.append({
                "claim": e["id"], "statement": e["statement"], "verdict (claim)": e["verdict"],
                "check": (chk or {}).get("check", ""), "data": setting.get("data", ""),
                "model": setting.get("model", ""), "attack": setting.get("attack", setting.get("details", "")),
                "seeds": seeds,
                "paper": (chk or {}).get("paper", e["paper"]), "ours": (chk or {}).get("ours", ""),
                "verdict (check)": (chk or {}).get("verdict", ""), "chapter": (chk or {}).get("chapter", ""),
                "device": prov.get("device", ""), "commit": str(prov.get("commit", ""))[:10],
            })
    return pd.DataFrame(rows)


def rows_table(ledger: list[dict[str, Any]]) -> pd.DataFrame:
    """One line per experiment row of the paper: its chapter's checks of the row's claim, combined."""
    out = []
    for row, (question, claim, chapter, paper) in ROWS.items():
        found = [c for c in next(e for e in ledger if e["id"] == claim)["checks"] if c["chapter"] == chapter]
        if row == "C":
            found = [c for c in found if "masking" in c.get("check", "")]
        elif row == "D":
            found = [c for c in found if "transfer" in c.get("check", "") or "square" in c.get("check", "")]
        out.append({"row": row, "question": question, "paper": paper, "claim": claim, "chapter": chapter,
                    "checks": len(found), "verdict": combine([c["verdict"] for c in found]) if found else NOT_TESTED})
    return pd.DataFrame(out)
