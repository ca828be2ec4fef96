"""The paper's twelve claims, as the book reads them, and its experiments (rows A-F): what each claims, the paper's
number, whether it is mathematics or a matter of data, and the paper's settings, where a check must be made to
count as "at the paper's setting" (:func:`at_paper_setting`: the whole setting, attack, network and data).
Data, not code: the ledger and the report read them, and the report says each decisive measure in words
(:data:`IN_WORDS`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, TypedDict

from flatrob.evidence.records import Setting
from flatrob.util.provenance import three_digits as fmt

__all__ = [
    "CLAIMS",
    "IN_WORDS",
    "LADDER_VARIANT",
    "PAPER_ATTACK",
    "PAPER_EPS",
    "REAL_IMAGES",
    "ROWS",
    "Claim",
    "at_paper_attack",
    "at_paper_setting",
]

#: The radius 8/255 of the paper's l_inf experiments.
PAPER_EPS = 8 / 255

#: The paper's PGD-l_inf attack: 10 steps of 2/255 at 8/255 (rows C, E, F and the predecessor's code).
PAPER_ATTACK: Setting = {"norm": "linf", "eps": PAPER_EPS, "steps": 10, "step_size": 2 / 255}

#: Claim 7's shift as the paper states it ("adversarially trained models shift the valley to later steps and larger
#: perturbations, but keep it", row E) is a statement across budgets and steps, so its setting is the paper's attack
#: carried along a ladder of budgets from 8/255 upwards with paths long enough to pass the flip
#: (:func:`flatrob.evidence.ladder.ladder_check`); the restricted mean time to flip at 8/255 alone, where the
#: adversarially trained model's attack flips few inputs, is mostly censoring and stays a further reading.
#: Row A of the paper: its unscaled ResNet-18 (CIFAR-10) keeps this share of its inputs under the weak attack (PGD-l2,
#: radius 0.025, 25 steps of 0.001), the number the last-layer-scaling chapter sets its own beside.
ROW_A_ROBUST = 0.9033
LADDER_VARIANT = "where the valley forms, along a PGD-linf budget ladder"

#: Real images: the data sets a verdict "at the paper's setting" may come from (the paper's CIFAR-10/100, and the
#: book's CPU stand-ins, Fashion-MNIST and MNIST; not scikit-learn's 8x8 digits, MNIST-1D or a toy manifold).
REAL_IMAGES = ("fashion-mnist", "fashion-mnist-3x32", "mnist", "cifar10", "cifar100")


class Claim(TypedDict):
    """A claim of the paper: ``statement``, the paper's value or shape (``paper``), ``kind`` ("mathematical" for the
    identities and bounds, "empirical" for what data decide), the paper's settings (``paper_settings``: setting
    fields a check must share to be at the paper's setting) and where our reading of it comes from (``source``)."""

    statement: str
    paper: str
    kind: str
    source: str
    paper_settings: list[Setting]


def _claim(statement: str, paper: str, kind: str, source: str, *paper_settings: Setting) -> Claim:
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
        "about 0.6 (clean) vs 1.0 (AT) (row B); the valley shifts to later steps and larger perturbations but "
        "persists (row E)",
        "empirical",
        "the 2025 paper, row B; row E for the shift",
        {"variant": LADDER_VARIANT},
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


def at_paper_attack(claim: int, setting: Mapping[str, object]) -> bool:
    """Whether a check's setting has the paper's attack (or variant) for its claim: every field of one of the claim's
    paper settings (:data:`CLAIMS`) shared, numbers compared to a relative 1e-6; the network and data aside."""

    def same(key: str, want: Any) -> bool:
        have = setting.get(key)
        if isinstance(want, float) and isinstance(have, (int, float)) and not isinstance(have, bool):
            return math.isclose(float(have), want, rel_tol=1e-6)
        return bool(have == want)

    return any(all(same(k, v) for k, v in paper.items()) for paper in CLAIMS[claim]["paper_settings"])


def at_paper_setting(claim: int, setting: Mapping[str, object]) -> bool:
    """Whether a check was made at the paper's setting, which is a property of the whole setting: the paper's attack
    (norm, radius, steps and step size) or variant for the claim (:func:`at_paper_attack`), on a network of the
    paper's kind (:data:`flatrob.zoo.PAPER_KIND`: residual with batch norm, or one of the paper's own) trained on
    real images (:data:`REAL_IMAGES`). A toy, a small CNN or another attack is a further setting, never the
    headline."""
    from flatrob.zoo import PAPER_KIND

    return (
        setting.get("architecture") in PAPER_KIND
        and setting.get("data") in REAL_IMAGES
        and at_paper_attack(claim, setting)
    )


def _percent(x: float) -> str:
    return f"{100 * x:.2g}%"


#: Each decisive measure said in words, from its value, for the report's cells (the measure's name and interval
#: stay beside it): "sharpness ends at 0.97% of its peak" for a median final/peak of 0.00975.
IN_WORDS: dict[str, Callable[[float], str]] = {
    "median final/peak": lambda v: f"sharpness ends at {_percent(v)} of its peak",
    "median kappa end / peak": lambda v: f"sharpness ends at {_percent(v)} of its peak",
    "median peak/start": lambda v: f"sharpness peaks at {fmt(v)}x its start",
    "share of rising inputs peaking near the flip": lambda v: f"{_percent(v)} of the rising inputs peak near the flip",
    "adversarially trained flip share at 8/255": lambda v: (
        f"the adversarially trained model's attack flips {_percent(v)} of its inputs at 8/255"
    ),
    "ratio of median Tr H": lambda v: f"Tr H at clean points is {fmt(v)}x the clean model's after adversarial training",
    "ratio of restricted mean times to the loss rise": lambda v: (
        f"the loss rises {fmt(v)}x later after adversarial training"
    ),
    "restricted mean time to flip, later by (steps)": lambda v: (
        f"inputs flip {fmt(v)} steps later after adversarial training"
    ),
    "largest ratio of medians, next scale / this one": lambda v: (
        f"sharpness falls at every larger scale (to at most {fmt(v)}x the previous)"
        if v < 1
        else f"sharpness grows by up to {fmt(v)}x from one scale to the next"
    ),
    "log10 change of the 0.9 quantile of the loss increases, smallest to largest s": lambda v: (
        f"the largest loss increases {'fall' if v < 0 else 'rise'} by {fmt(abs(v))} decades as s grows"
    ),
    "share of monotone points": lambda v: f"sharpness falls monotonically at {_percent(v)} of the points",
    "PGD robust accuracy gain": lambda v: f"PGD robust accuracy rises by {100 * v:.2g} points as s grows",
    "share of inputs a scaled model gets right that the examples fool at the smallest s": lambda v: (
        f"scaling rescues {_percent(v)} of the inputs the transferred examples fool"
    ),
    "held-out accuracy": lambda v: f"the stump is right on {_percent(v)} of held-out inputs, chance being 50%",
    "held-out accuracy, sharpness minus confidence": lambda v: (
        f"the sharpness stump is {abs(100 * v):.2g} points {'better' if v > 0 else 'worse'} than the confidence stump"
    ),
    "median max/min of ||phi||": lambda v: f"the feature norm changes by a factor {fmt(v)} along the path",
    "median kappa, confidently wrong / boundary": lambda v: (
        f"confidently wrong points are {fmt(1 / v)}x flatter than boundary points"
        if v > 0
        else "confidently wrong points are flat"
    ),
}
