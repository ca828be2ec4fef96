"""The claims ledger: the paper's twelve claims, the checks the chapters computed for them, verdicts per setting.

Two ledgers, never mixed up:

* **the committed evidence** (``data/claims/<chapter>.json``, merged into ``data/claims.json``): the reference.
  Only :func:`flatrob.evidence.update` (``python -m flatrob ledger --update``, ``make ledger``) writes it, from a
  build, and only from a clean tree at the commit that made every entry;
* **this build's ledger** (``_build/ledger/<chapter>.json``): what the chapters computed on this machine when the
  book was built with ``make book`` (``FLATROB_LEDGER=1``; :func:`record`). A build never rewrites tracked files.

:func:`build` merges one ledger into one entry per claim, with a verdict per setting (data, model, training, attack,
source of the evidence), the paper's setting first. :mod:`flatrob.evidence` sets the two ledgers side by side and
makes a build the committed evidence.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flatrob.paths import build_ledger_dir
from flatrob.provenance import atomic_write_text, json_text, strict_json
from flatrob.verdicts import EVIDENCE_VERDICTS, VERDICTS, Check, combine

__all__ = [
    "CLAIMS",
    "LEDGER_ENV",
    "NOT_TESTED",
    "PAPER_ATTACK",
    "REAL_IMAGES",
    "ROWS",
    "Claim",
    "at_paper_attack",
    "at_paper_setting",
    "build",
    "entry",
    "load",
    "record",
    "setting_group",
    "setting_label",
    "strongest_groups",
]

#: Set FLATROB_LEDGER=1 (``make book`` does) to let the chapters write their entries to this build's ledger.
LEDGER_ENV = "FLATROB_LEDGER"
#: The verdict of a claim no chapter has checked.
NOT_TESTED = "not tested yet"
#: The radius 8/255 of the paper's l_inf experiments.
PAPER_EPS = 8 / 255
#: The paper's PGD-l_inf attack: 10 steps of 2/255 at 8/255 (rows C, E, F and the predecessor's code).
PAPER_ATTACK: dict[str, Any] = {"norm": "linf", "eps": PAPER_EPS, "steps": 10, "step_size": 2 / 255}
#: Real images: the data sets a verdict "at the paper's setting" may come from (the paper's CIFAR-10/100, and the
#: book's CPU stand-ins, Fashion-MNIST and MNIST; not scikit-learn's 8x8 digits, MNIST-1D or a toy manifold).
REAL_IMAGES = ("fashion-mnist", "mnist", "cifar10", "cifar100")


class Claim(dict):  # type: ignore[type-arg]
    """A claim of the paper: ``statement``, the paper's value or shape (``paper``), ``kind`` ("mathematical" for the
    identities and bounds, "empirical" for what data decide), the paper's settings (``paper_settings``: setting
    fields a check must share to be at the paper's setting) and where our reading of it comes from (``source``)."""


def _claim(statement: str, paper: str, kind: str, source: str, *paper_settings: dict[str, Any]) -> Claim:
    return Claim(statement=statement, paper=paper, kind=kind, source=source, paper_settings=list(paper_settings))


#: The twelve claims of the paper the book checks (the book's page "The paper, as we read it" says where each comes
#: from). Math is written for MathJax, between \( and \), so the report typesets it.
CLAIMS: dict[int, Claim] = {
    1: _claim(
        r"The closed-form last-layer Hessian \(H = (\operatorname{diag} p - p p^\top) \otimes \phi\phi^\top\) "
        r"equals the autograd Hessian and is label independent.",
        "identity",
        "mathematical",
        "Petzka et al. (2021), section on the last layer; the 2025 paper's closed form",
    ),
    2: _claim(
        r"Layer-wise and neuron-wise relative sharpness have the closed forms "
        r"\(\kappa = \|W\|_F^2 (1 - \|p\|^2) \|\phi\|^2\) and "
        r"\(\|\phi\|^2 \operatorname{tr} \operatorname{Cov}_{s \sim p}(w_s)\).",
        "identities",
        "mathematical",
        "the 2025 paper's closed form (layer-wise); the neuron-wise form derived here",
    ),
    3: _claim(
        r"A loss change above \(\log k\) forces a label flip; the converse fails.",
        "proof + two counterexamples",
        "mathematical",
        "the 2025 paper's definition; public reviews",
    ),
    4: _claim(
        r"Bridging lemma: \(\phi(\xi) = \phi(x) + \Delta A \phi(x)\) with \(A\) orthogonal and "
        r"\(\Delta \le L\delta / r\).",
        "inequality",
        "mathematical",
        "the 2025 paper's lemma, as summarised",
    ),
    5: _claim(
        r"The local bound \(\ell(\xi) - \ell(x) \le \frac{\delta^2 L^2 \kappa}{2 r^2} + c\,\delta^3\) holds "
        r"for small \(\delta\).",
        r"\(c = k m L^6 / (24 r^3)\)",
        "mathematical",
        "the 2025 paper's theorem, as summarised second-hand",
    ),
    6: _claim(
        "Uncanny valley: along PGD, sharpness rises, peaks near the flip, then collapses.",
        "rise, peak, collapse (row E)",
        "empirical",
        "the 2025 paper's figures (row E); the 2024 predecessor",
        PAPER_ATTACK,
    ),
    7: _claim(
        "Adversarial training shifts the valley and widens the low-loss basin.",
        r"about 20x more PGD-\(\ell_2\) steps before the loss rises; \(\operatorname{Tr} H\) at clean points "
        "about 0.6 (clean) vs 1.0 (AT) (row B)",
        "empirical",
        "the 2025 paper, row B; row E for the shift",
        PAPER_ATTACK,
        {"norm": "l2", "eps": 0.5, "steps": 50, "step_size": 0.01},
    ),
    8: _claim(
        r"Relative sharpness falls monotonically with the last-layer scale \(s\).",
        "falls with s; 90.33% accuracy under the weak attack at s = 1 (row A)",
        "empirical",
        "the 2025 paper, row A",
        {"variant": "bias scaled"},
        {"norm": "l2", "eps": 0.025, "steps": 25, "step_size": 0.001},
    ),
    9: _claim(
        r"Gradient masking: PGD robust accuracy rises with \(s\) while transfer and gradient-free attacks "
        r"still succeed.",
        "0% at s = 1 to 93% at s = 100; 100% transfer (rows C, D); the predecessor's "
        "ResNet-18: 93.88% clean, 0.01% under PGD-linf 8/255",
        "empirical",
        "the 2025 paper, rows C and D",
        PAPER_ATTACK,
    ),
    10: _claim(
        "Confidently wrong points are flat.",
        "shape",
        "empirical",
        "the 2025 paper's explanation of the collapse; not-global's proposition is ours",
        PAPER_ATTACK,
    ),
    11: _claim(
        "A one-threshold stump on sharpness separates clean from adversarial inputs.",
        "accuracy 0.92-0.93 (row F)",
        "empirical",
        "the 2025 paper, row F (WRN-28-4)",
        PAPER_ATTACK,
    ),
    12: _claim(
        r"The sharpness curve is more than the confidence: \(\|\phi\|\) moves along PGD paths (the paper's "
        r"reading, against a reviewer's alternative that it stays constant).",
        "open question",
        "empirical",
        "public reviews of the 2025 paper",
        PAPER_ATTACK,
    ),
}

#: The paper's experiments: row -> (question, the claim its checks feed, the chapter that re-runs it, the check
#: parts that belong to it, the paper's numbers).
ROWS: dict[str, tuple[str, int, str, tuple[str, ...], str]] = {
    "A": (
        "flatness (by last-layer scaling) reduces local loss growth",
        8,
        "last-layer-scaling",
        (),
        "sharpness falls with s; loss increases concentrate near 0; 90.33% accuracy under the weak attack",
    ),
    "B": (
        "adversarial training widens the low-loss basin",
        7,
        "basin",
        (),
        r"about 20x more iterations; \(\operatorname{Tr} H\) about 0.6 (clean) vs 1.0 (AT)",
    ),
    "C": (
        "flatness by scaling masks gradients",
        9,
        "gradient-masking",
        ("masking",),
        "robust accuracy 0% at s = 1, 93% at s = 100",
    ),
    "D": (
        "... but examples made at s = 1 still transfer",
        9,
        "gradient-masking",
        ("transfer-bias-kept", "transfer-bias-scaled", "square"),
        "100% transfer",
    ),
    "E": (
        "the uncanny valley along PGD trajectories",
        6,
        "uncanny-valley",
        (),
        "rise, peak near the flip, collapse; AT shifts the valley",
    ),
    "F": ("sharpness as a detector of adversarial inputs", 11, "detector", (), "stump accuracy 0.92-0.93 (WRN-28-4)"),
}

#: Provenance fields that change on every run without changing a result: ignored when deciding to rewrite.
_VOLATILE = ("commit", "time_utc", "duration_s")
#: Setting fields that tell settings apart in the report (the others, steps or inputs, describe one).
_GROUP_KEYS = ("data", "architecture", "epochs", "training", "norm", "eps", "variant", "source")
#: How strong a source of evidence is: a committed larger run beats a sweep over seeds beats one live run; a study
#: beyond the paper's settings (other models, budgets) never decides a claim's headline.
_STRENGTH = {"run": 3, "sweep": 2, "live": 1, "study": 0}


# ---------------------------------------------------------------------------
# entries


def entry(check: Check, chapter: str, provenance: Mapping[str, Any]) -> dict[str, Any]:
    """The ledger entry of one check: claim, check, setting, verdict (and whether it is fragile), evidence, the
    decisive measure, the paper's number, values, chapter and provenance."""
    if check.claim not in CLAIMS:
        raise ValueError(f"claim must be one of {sorted(CLAIMS)}; got {check.claim}")
    if check.verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}; got {check.verdict!r}")
    return {
        "claim": check.claim,
        "check": check.id,
        "part": check.part,
        "statement": check.statement,
        "paper": check.paper or CLAIMS[check.claim]["paper"],
        "setting": check.setting,
        "ours": check.evidence,
        "verdict": check.verdict,
        "fragile": check.fragile,
        "measure": check.measure,
        "values": check.values,
        "chapter": chapter,
        # the run that made the check (a committed sweep's runs, a committed run), or this one; judged by this build
        "provenance": dict(check.provenance, judged_at=provenance.get("commit"))
        if check.provenance
        else dict(provenance),
    }


def _stable(doc: Mapping[str, Any]) -> Any:
    """A ledger file as JSON holds it, without the fields that change on every run (commit, time, duration)."""
    plain = strict_json(doc)
    plain.pop("duration_s", None)
    for e in plain.get("entries", []):
        for key in _VOLATILE:
            e.get("provenance", {}).pop(key, None)
    return plain


def record(
    chapter: str,
    entries: Sequence[Mapping[str, Any]],
    *,
    duration_s: float | None = None,
    root: Path | None = None,
    force: bool = False,
) -> Path | None:
    """Write a chapter's entries to this build's ledger, ``_build/ledger/<chapter>.json``, when FLATROB_LEDGER=1
    (or ``force``). Test runs with small parameters leave it alone; the file is rewritten only when a verdict, a
    value or a setting changed. Returns the path written, or None."""
    if not force and os.environ.get(LEDGER_ENV) != "1":
        return None
    path = build_ledger_dir(root) / f"{chapter}.json"
    doc = strict_json({"chapter": chapter, "duration_s": duration_s, "entries": list(entries)})
    if path.exists():
        try:
            if _stable(json.loads(path.read_text())) == _stable(doc):
                return None
        except json.JSONDecodeError:
            pass  # an unreadable file is replaced
    return atomic_write_text(path, json_text(doc))


def load(folder: Path) -> dict[str, dict[str, Any]]:
    """The ledger files of a folder (this build's or the committed one), by chapter: {chapter: {"chapter",
    "duration_s", "entries"}}."""
    out = {}
    for f in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        doc = json.loads(f.read_text())
        if isinstance(doc, dict) and "entries" in doc:  # files of an older layout (a bare list) are not read
            out[doc["chapter"]] = doc
    return out


def _entries(ledger: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [dict(e) for doc in ledger.values() for e in doc["entries"]]


# ---------------------------------------------------------------------------
# settings


def source_kind(setting: Mapping[str, Any]) -> str:
    """ "live" (a chapter's own run in this build), "sweep" (a committed sweep over seeds), "study" (a committed sweep
    beyond the paper's settings) or "run" (a committed larger run)."""
    return str(setting.get("source", "live")).split(" ")[0]


def setting_group(setting: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The fields that tell a setting apart from the claim's other settings (:data:`_GROUP_KEYS`)."""
    return tuple((k, setting[k]) for k in _GROUP_KEYS if setting.get(k) is not None)


def setting_label(setting: Mapping[str, Any]) -> str:
    """A setting in words: ``PGD-linf 8/255, clean, small-cnn (4 epochs), fashion-mnist; sweep X (seeds 0, 1, 2)``."""
    bits = []
    if setting.get("norm"):
        eps = float(setting["eps"])
        radius = "8/255" if math.isclose(eps, PAPER_EPS, rel_tol=1e-6) else f"{eps:.3g}"
        bits.append(f"PGD-{setting['norm']} {radius}")
    if setting.get("training"):
        bits.append(str(setting["training"]))
    if setting.get("architecture"):
        bits.append(f"{setting['architecture']}" + (f" ({setting['epochs']} epochs)" if setting.get("epochs") else ""))
    if setting.get("data"):
        bits.append(str(setting["data"]))
    text = ", ".join(bits) or "no attack"
    source = str(setting.get("source", "live"))
    if source != "live":
        seeds = setting.get("seeds")
        text += f"; {source}" + (f" (seeds {', '.join(map(str, seeds))})" if seeds else "")
    return text


def at_paper_attack(claim: int, setting: Mapping[str, Any]) -> bool:
    """Whether a check's setting has the paper's attack (or variant) for its claim: every field of one of the claim's
    paper settings (:data:`CLAIMS`) shared, numbers compared to a relative 1e-6; the network and data aside."""

    def same(key: str, want: Any) -> bool:
        have = setting.get(key)
        if isinstance(want, float) and isinstance(have, (int, float)) and not isinstance(have, bool):
            return math.isclose(float(have), want, rel_tol=1e-6)
        return bool(have == want)

    return any(all(same(k, v) for k, v in paper.items()) for paper in CLAIMS[claim]["paper_settings"])


def at_paper_setting(claim: int, setting: Mapping[str, Any]) -> bool:
    """Whether a check was made at the paper's setting, which is a property of the whole setting: the paper's attack
    (norm, radius, steps and step size) or variant for the claim (:func:`at_paper_attack`), on a network of the
    paper's kind (:data:`flatrob.models.PAPER_KIND`: residual with batch norm, or one of the paper's own) trained on
    real images (:data:`REAL_IMAGES`). A toy, a small CNN or another attack is a further setting, never the
    headline."""
    from flatrob.models import PAPER_KIND

    return (
        setting.get("architecture") in PAPER_KIND
        and setting.get("data") in REAL_IMAGES
        and at_paper_attack(claim, setting)
    )


def build(ledger: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One entry per claim from a ledger ({chapter: file}, :func:`load`): its checks, its settings with a verdict
    each (the paper's settings first, then the others by strength of evidence and radius) and its headline verdict:
    the verdict at the paper's setting (:func:`at_paper_setting`) from the strongest evidence there (a committed
    larger run, else a sweep over seeds, else a live run). Where nothing at the paper's setting is evidence, the
    headline keeps the reason (not testable here, not reached in this regime, cannot decide here) and names the best
    further setting (``further``: its label and verdict). A claim without a paper setting (the mathematical ones)
    combines all its checks."""
    by_claim: dict[int, list[dict[str, Any]]] = {c: [] for c in CLAIMS}
    for e in _entries(ledger):
        by_claim[int(e["claim"])].append(e)
    out = []
    for c, claim in CLAIMS.items():
        found = by_claim[c]
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for e in found:
            groups.setdefault(setting_group(e["setting"]), []).append(e)
        settings: list[dict[str, Any]] = []
        for key, members in groups.items():
            s = members[0]["setting"]
            settings.append(
                {
                    "setting": dict(key),
                    "label": setting_label(s),
                    "paper_setting": at_paper_setting(c, s),
                    "paper_attack": at_paper_attack(c, s) if claim["paper_settings"] else False,
                    "strength": _STRENGTH.get(source_kind(s), 1),
                    "verdict": combine([m["verdict"] for m in members]),
                    "fragile": any(m.get("fragile") for m in members),
                    "checks": [m["check"] for m in members],
                }
            )
        settings.sort(
            key=lambda g: (not g["paper_setting"], -g["strength"], float(g["setting"].get("eps", 0.0)), g["label"])
        )
        paper = (
            [g for g in settings if g["paper_setting"] and g["strength"] > 0] if claim["paper_settings"] else settings
        )
        head = strongest_groups(paper)
        verdict = combine([g["verdict"] for g in head]) if head else NOT_TESTED
        further = None
        if claim["paper_settings"] and verdict not in EVIDENCE_VERDICTS:
            others = strongest_groups([g for g in settings if not g["paper_setting"] and g["strength"] > 0])
            if others:
                further = {"label": others[0]["label"], "verdict": combine([g["verdict"] for g in others])}
        out.append(
            {
                "claim": c,
                **claim,
                "verdict": verdict,
                "fragile": any(g["fragile"] for g in head),
                "further": further,
                "settings": settings,
                "checks": found,
            }
        )
    return out


def strongest_groups(groups: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The groups of settings from the strongest evidence among ``groups``: all groups of the strongest source that
    gave any evidence (or, when none did, of the strongest source at all); a group of that source that could not
    test stays in, so that the combined verdict says "partly" rather than passing over it."""
    telling = [g for g in groups if g["verdict"] in EVIDENCE_VERDICTS] or list(groups)
    strongest = max((g["strength"] for g in telling), default=None)
    return [g for g in groups if g["strength"] == strongest]
