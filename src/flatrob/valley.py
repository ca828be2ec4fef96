"""The uncanny valley, per input: what a trajectory says about the inputs that start correct and flip (the rise, the
peak, the collapse, the flip and the censored times of those that never flip), and per step (quartiles of every
statistic). The checks of claims 6, 7 and 12 take these."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict, cast

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from flatrob.attacks import STAT_NAMES, Trajectory
from flatrob.zoo import architecture_traits

__all__ = [
    "AXES",
    "PER_INPUT_KEYS",
    "PathPoints",
    "path_points",
    "VALLEY_KEYS",
    "ValleySamples",
    "axis_effects",
    "budget_summary",
    "curves",
    "family_label",
    "median_sides",
    "one_axis_pairs",
    "per_input",
    "pooled_paths",
    "valley_samples",
    "valley_summary",
]


def curves(traj: Trajectory, **labels: Any) -> pd.DataFrame:
    """Per-step quartiles of every statistic over the samples classified correctly at the start.

    One row per (step, statistic) with columns q25, median, q75, mean and the ``labels``.
    Also ``flipped``: the fraction of those samples misclassified at that step (NaN when none started correct).

    Args:
        traj: an attack's :class:`~flatrob.attacks.Trajectory` (statistics of shape (steps + 1, n)).
        labels: columns added to every row (model, attack, radius, ...).

    Returns:
        A long DataFrame with one row per step and statistic, and ``q25``, ``median``, ``q75``, ``mean`` over the inputs
        that start correct, ``flipped`` (the share of them wrong at that step), and the labels.
    """
    sel = traj.pred[0] == traj.labels
    rows = []
    for name in STAT_NAMES:
        v = traj.stats[name][:, sel].double()
        q = (
            torch.quantile(v, torch.tensor([0.25, 0.5, 0.75], dtype=v.dtype), dim=1)
            if v.shape[1]
            else torch.full((3, v.shape[0]), float("nan"))
        )
        for t in range(v.shape[0]):
            rows.append(
                {
                    "step": t,
                    "stat": name,
                    "q25": float(q[0, t]),
                    "median": float(q[1, t]),
                    "q75": float(q[2, t]),
                    "mean": float(v[t].mean()) if v.shape[1] else float("nan"),
                }
            )
    frame = pd.DataFrame(rows)
    flipped = (traj.pred[:, sel] != traj.labels[sel]).double().mean(1).numpy()
    frame["flipped"] = flipped[frame["step"].to_numpy()]
    for k, v in labels.items():
        frame[k] = v
    return frame


#: The per-input shape statistics of :func:`valley_samples` (over the inputs that start correct and flip).
VALLEY_KEYS = (
    "start",
    "peak",
    "final",
    "peak_over_start",
    "final_over_peak",
    "flip_step",
    "peak_step",
    "peak_minus_flip",
    "abs_peak_minus_flip",
    "final_confidence",
    "final_wrong",
    "feature_norm_max_over_min",
    "decades_phi_sq",
    "decades_one_minus_p2",
)


#: What :func:`valley_samples` returns: the counts, the per-input arrays of every input (n,) and, for every key of
#: :data:`VALLEY_KEYS`, the float64 array (n_flipped,) of the inputs that start correct and flip.
# fmt: off
ValleySamples = TypedDict("ValleySamples", {  # noqa: UP013 (compact: the module stays under 500 lines)
    "steps": int, "n_samples": int, "n_start_correct": int, "n_flipped": int,
    "start_correct": np.ndarray, "flipped": np.ndarray, "time_to_flip": np.ndarray, "peak_step_all": np.ndarray,
    "start": np.ndarray, "peak": np.ndarray, "final": np.ndarray, "peak_over_start": np.ndarray,
    "final_over_peak": np.ndarray, "flip_step": np.ndarray, "peak_step": np.ndarray, "peak_minus_flip": np.ndarray,
    "abs_peak_minus_flip": np.ndarray, "final_confidence": np.ndarray, "final_wrong": np.ndarray,
    "feature_norm_max_over_min": np.ndarray, "decades_phi_sq": np.ndarray, "decades_one_minus_p2": np.ndarray
})
# fmt: on


def valley_samples(traj: Trajectory, stat: str = "kappa_layer") -> ValleySamples:
    """Per-input shape statistics of one statistic along the paths of the inputs that start correct and flip.

    The checks of claims 6, 7 and 12 take these (:ref:`uncanny-valley`).

    Args:
        traj: the instrumented attack's record (:func:`flatrob.attacks.pgd` with ``track=True``), n inputs.
        stat: the statistic whose shape is measured (default: the layer-wise relative sharpness).

    Returns:
        Counts (``steps``, ``n_samples``, ``n_start_correct``, ``n_flipped``); for every key of
        :data:`VALLEY_KEYS` a float64 array of shape (n_flipped,): the start, peak and final values, peak/start,
        final/peak, the flip and peak steps and their offset, the final confidence, whether the final prediction
        is wrong, the max/min ratio of ``||phi||`` and how many decades ``||phi||^2`` and ``1 - ||p||^2`` each
        span; and for every input, shape (n,): ``start_correct`` and ``flipped`` (bool), ``time_to_flip`` (the first
        wrong iterate, ``steps + 1`` when the input never flips, NaN when it starts wrong) and ``peak_step_all``.
    """
    flip = traj.flip_step()
    start_correct = traj.pred[0] == traj.labels
    sel = start_correct & (flip > 0)
    out: dict[str, Any] = {
        "steps": traj.steps,
        "n_samples": int(len(traj.labels)),
        "n_start_correct": int(start_correct.sum()),
        "n_flipped": int(sel.sum()),
    }
    time_to_flip = torch.where(flip > 0, flip, torch.full_like(flip, traj.steps + 1)).double()
    out["start_correct"] = start_correct.numpy()
    out["flipped"] = sel.numpy()
    out["time_to_flip"] = torch.where(start_correct, time_to_flip, torch.full_like(time_to_flip, math.nan)).numpy()
    out["peak_step_all"] = np.full(len(traj.labels), math.nan)
    if not sel.any():  # nothing flipped: every statistic is an empty array
        return cast(ValleySamples, out | {k: np.zeros(0) for k in VALLEY_KEYS})
    v = traj.stats[stat][:, sel].double()
    peak_step = v.argmax(0)
    out["peak_step_all"][sel.numpy()] = peak_step.double().numpy()
    phi = traj.stats["feature_norm"][:, sel].double()
    one_minus_p2 = (traj.stats["trace"][:, sel].double() / phi**2).clamp_min(1e-300)

    def decades(a: Tensor) -> Tensor:
        return a.log10().amax(0) - a.log10().amin(0)

    start, peak, final = v[0], v.amax(0), v[-1]
    cols = {
        "start": start,
        "peak": peak,
        "final": final,
        "peak_over_start": peak / start,
        "final_over_peak": final / peak,
        "flip_step": flip[sel].double(),
        "peak_step": peak_step.double(),
        "peak_minus_flip": (peak_step - flip[sel]).double(),
        "abs_peak_minus_flip": (peak_step - flip[sel]).abs().double(),
        "final_confidence": traj.stats["confidence"][-1, sel].double(),
        "final_wrong": (traj.pred[-1, sel] != traj.labels[sel]).double(),
        "feature_norm_max_over_min": phi.amax(0) / phi.amin(0),
        "decades_phi_sq": decades(phi**2),
        "decades_one_minus_p2": decades(one_minus_p2),
    }
    return cast(ValleySamples, out | {k: cols[k].numpy() for k in VALLEY_KEYS})


#: The columns of :func:`per_input`, one value per input and setting.
PER_INPUT_KEYS = ("peak_over_start", "final_over_peak", "flip_step", "peak_step", "final_confidence")


def per_input(samples: Mapping[tuple[float, str], Mapping[str, Any]]) -> pd.DataFrame:
    """One row per input that starts correct, per radius and model: when it flips and how its valley is shaped.

    Args:
        samples: (radius, model) -> :func:`valley_samples` of that model's attack at that radius.

    Returns:
        Columns radius, model, steps, input (its index in the attacked batch), time_to_flip (the first wrong
        iterate, ``steps + 1`` when it never flips), flipped (bool) and, for the inputs that flip (NaN for the
        others), every key of :data:`PER_INPUT_KEYS`. The uncanny-valley chapter saves it as ``ladder.csv``.
    """
    frames = []
    for (radius, model), s in samples.items():
        correct = np.flatnonzero(s["start_correct"])
        frame = pd.DataFrame(
            {
                "radius": float(radius),
                "model": model,
                "steps": int(s["steps"]),
                "input": correct,
                "time_to_flip": s["time_to_flip"][correct],
                "flipped": np.asarray(s["flipped"])[correct],
            }
        )
        for key in PER_INPUT_KEYS:
            col = np.full(len(correct), math.nan)
            col[np.asarray(s["flipped"])[correct]] = s[key]
            frame[key] = col
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def valley_summary(traj: Trajectory, stat: str = "kappa_layer") -> dict[str, float]:
    """The counts of :func:`valley_samples` and the median of each per-input statistic (NaN when nothing flipped);
    ``flipped_fraction`` is the share of the inputs that start correct and flip.

    Args:
        traj: an attack's :class:`~flatrob.attacks.Trajectory`.
        stat: the sharpness statistic of the valley (:prf:ref:`prop-kappa-closed`'s per-input kappa by default).

    Returns:
        A dict of the counts (inputs, that start correct, that flip), ``flipped_fraction`` and
        the median of each per-input statistic of :func:`valley_samples` over the flipped inputs (NaN when none
        flipped).
    """
    samples: Mapping[str, Any] = valley_samples(traj, stat)
    out: dict[str, float] = {k: samples[k] for k in ("steps", "n_samples", "n_start_correct", "n_flipped")}
    out["flipped_fraction"] = (
        samples["n_flipped"] / samples["n_start_correct"] if samples["n_start_correct"] else math.nan
    )
    out |= {k: float(np.median(samples[k])) if len(samples[k]) else math.nan for k in VALLEY_KEYS}
    return out


def pooled_paths(runs: Mapping[Any, Mapping[str, np.ndarray]], stat: str = "kappa_layer") -> pd.DataFrame:
    """A statistic along the attack's path, pooled over the inputs of several runs (seeds), and per run.

    Args:
        runs: run label (a seed) -> its saved paths: ``<model>/<stat>`` and ``<model>/wrong``, each of shape
            (T + 1, n), as the uncanny-valley chapter saves them in ``paths.npz``.
        stat: the statistic to pool.

    Returns:
        A long table (columns model, run, step, q25, median, q75, flipped, n) with, per model and step, the
        quartiles over the inputs that start correct of all runs together (``run`` "pooled", with the share that
        has flipped and the number of inputs), and each run's median (``run`` its label).
    """
    rows = []
    models = sorted({key.split("/")[0] for arrays in runs.values() for key in arrays})
    for model in models:
        pooled_v, pooled_w = [], []
        for label, arrays in runs.items():
            if f"{model}/{stat}" not in arrays:
                continue
            values, wrong = np.asarray(arrays[f"{model}/{stat}"], float), np.asarray(arrays[f"{model}/wrong"], bool)
            start = ~wrong[0]
            pooled_v.append(values[:, start])
            pooled_w.append(wrong[:, start])
            for step, row in enumerate(values[:, start]):
                rows.append({"model": model, "run": str(label), "step": step, "median": float(np.median(row))})
        if not pooled_v:
            continue
        v, w = np.concatenate(pooled_v, axis=1), np.concatenate(pooled_w, axis=1)
        q = np.quantile(v, [0.25, 0.5, 0.75], axis=1)
        for step in range(v.shape[0]):
            rows.append(
                {
                    "model": model,
                    "run": "pooled",
                    "step": step,
                    "q25": float(q[0, step]),
                    "median": float(q[1, step]),
                    "q75": float(q[2, step]),
                    "flipped": float(w[step].mean()),
                    "n": int(v.shape[1]),
                }
            )
    return pd.DataFrame(rows)


def budget_summary(samples: Mapping[str, Any], label: str, steps: int, travel: float) -> dict[str, Any]:
    """One attack budget's row of the valley-conditions study, from :func:`valley_samples`: how many inputs flip, the
    medians of final/peak and of the final confidence, and the rank correlation of the flip step with log final/peak
    (positive: the inputs that flip early are the ones whose sharpness ends lowest).

    Args:
        samples: :func:`valley_samples` of one attack budget.
        label: the budget in words (its row's name).
        steps: the budget's PGD iterations.
        travel: how far it can travel, in radii (step size x steps / radius).

    Returns:
        One row as a dict with the label, steps, travel, how many inputs start correct and flip, the medians of
        final/peak and of the final confidence over the flipped inputs, and the Spearman correlation of the flip
        step with log final/peak.
    """
    from scipy.stats import spearmanr

    n = samples["n_flipped"]
    rho = float(spearmanr(samples["flip_step"], np.log(samples["final_over_peak"])).statistic) if n > 2 else math.nan
    return {
        "budget": label,
        "steps": steps,
        "travel (radii)": travel,
        "flipped": n,
        "of": samples["n_start_correct"],
        "median final/peak": float(np.median(samples["final_over_peak"])) if n else math.nan,
        "median final confidence": float(np.median(samples["final_confidence"])) if n else math.nan,
        "Spearman(flip step, log final/peak)": rho,
    }


#: The axes of the valley-conditions study: a trait of the network (:func:`flatrob.zoo.architecture_traits`) or
#: of its training ("epochs").
AXES = ("batch norm", "residual", "depth", "widen", "epochs")


def family_label(architecture: str) -> str:
    """What a network of the study is made of, in words: "batch norm, residual", "no batch norm, plain", ... for the
    residual family (:func:`flatrob.zoo.architecture_traits`), else its kind ("small CNN", "transformer").

    Args:
        architecture: a name of :data:`flatrob.zoo.ARCHITECTURES`.

    Returns:
        Its make-up in words, "batch norm, residual", "no batch norm, plain", ... or "small CNN", "transformer",
        or the name itself.
    """
    traits = architecture_traits(architecture)
    if not traits:
        return {"vit": "transformer", "small-cnn": "small CNN"}.get(architecture, architecture)
    return ("batch norm" if traits["batch norm"] else "no batch norm") + (
        ", residual" if traits["residual"] else ", plain"
    )


def _trait(r: Mapping[str, Any], axis: str) -> Any:
    v = r.get(axis)
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def one_axis_pairs(records: list[Mapping[str, Any]]) -> list[tuple[str, Mapping[str, Any], Mapping[str, Any]]]:
    """Every pair of settings that differ in exactly one of ``AXES``, as (axis, lower, higher): from without to
    with (batch norm, residual), from less to more (depth, widen, epochs).

    Args:
        records: one mapping per setting with the columns of ``AXES`` it has (missing traits as None or NaN:
            such settings pair on "epochs" only, and only with the same ``architecture``).

    Returns:
        The pairs, in the order of ``records``.
    """
    out = []
    for i, a in enumerate(records):
        for b in records[i + 1 :]:
            differ = [x for x in AXES if _trait(a, x) != _trait(b, x)]
            if len(differ) != 1 or _trait(a, differ[0]) is None or _trait(b, differ[0]) is None:
                continue
            untraited = any(_trait(r, x) is None for r in (a, b) for x in AXES if x != "epochs")
            if untraited and a.get("architecture") != b.get("architecture"):
                continue  # two networks outside the family (the small CNN, the transformer) differ in more than epochs
            axis = differ[0]
            out.append((axis, *((a, b) if _trait(a, axis) < _trait(b, axis) else (b, a))))
    return out


def axis_effects(settings: pd.DataFrame) -> pd.DataFrame:
    """What changing one axis at a time does to the collapse: every pair of settings that differ in exactly one of
    ``AXES`` (``one_axis_pairs``), with the verdict and the median final/peak on both sides.

    ``settings``: one row per setting with the columns of ``AXES`` (missing traits as NaN), ``setting`` (a
    label), ``verdict`` and ``final/peak``. Returns one row per pair: axis, from, to, verdict from -> to,
    final/peak from -> to, and whether the verdict changes.

    Args:
        settings: one row per setting with the columns of ``AXES`` (missing traits as NaN), ``setting`` (a
            label), ``verdict`` and ``final/peak``.

    Returns:
        One row per one-axis pair, with ``axis``, ``from``, ``to``, the verdicts and final/peak on both sides, and
        whether the verdict changes.
    """

    def show(v: Any) -> str:
        return f"{v:g}" if isinstance(v, float) else str(v).lower()

    rows = [
        {
            "axis": axis,
            "from": f"{lo['setting']} ({axis}: {show(_trait(lo, axis))})",
            "to": f"{hi['setting']} ({axis}: {show(_trait(hi, axis))})",
            "verdict": f"{lo['verdict']} -> {hi['verdict']}",
            "final/peak": f"{lo['final/peak']:.3g} -> {hi['final/peak']:.3g}",
            "verdict changes": lo["verdict"] != hi["verdict"],
        }
        for axis, lo, hi in one_axis_pairs(settings.to_dict(orient="records"))
    ]
    return pd.DataFrame(rows)


def median_sides(settings: pd.DataFrame, threshold: float) -> str:
    """Which settings fall below a collapse threshold by their median final/peak over seeds, and which stay above,
    with what they are made of: a description of the medians, not a verdict (the verdicts pool the seeds).

    Args:
        settings: one row per setting with ``setting`` (a label), ``final/peak`` (the median over seeds), ``seeds``
            and the columns of ``AXES`` it has.
        threshold: the final/peak below which a setting counts as collapsed (``1 / COLLAPSE_FACTOR``).

    Returns:
        One or two Markdown sentences; when a setting has fewer than three seeds, a third saying that its pooled
        interval (a t-interval with one degree of freedom for two seeds) is too wide to confirm either side.
    """
    if settings.empty:
        return ""

    def traits(r: Mapping[str, Any]) -> str:
        made = [axis for axis in ("batch norm", "residual") if isinstance(r.get(axis), (bool, np.bool_)) and r[axis]]
        return ", ".join(made) if made else "neither batch norm nor residual connections"

    def listed(rows: pd.DataFrame) -> str:
        return "; ".join(f"{r['setting']} ({r['final/peak']:.2g}, {traits(r)})" for r in rows.to_dict("records"))

    below = settings[settings["final/peak"] < threshold]
    above = settings[settings["final/peak"] >= threshold]
    parts = [f"By the medians over seeds alone (a description, not a verdict), final/peak ends below {threshold:g} "]
    parts.append(f"for {listed(below)}" if len(below) else "for no setting")
    parts.append(f", and stays above it for {listed(above)}." if len(above) else ", and for every setting.")
    few = int(settings["seeds"].min())
    if few < 3:
        parts.append(
            f" With {few} seeds a setting's pooled interval is a t-interval with {few - 1} degree(s) of freedom, too "
            "wide to confirm either side: the third seed is what would turn these medians into verdicts."
        )
    return "".join(parts)


@dataclass
class PathPoints:
    """Three points of every input's attack path: the clean start, the boundary (the iterate where the two most
    probable classes are closest) and the adversarial end. Each field maps "clean", "boundary" and "adversarial"
    to a tensor of shape (n,); ``table`` holds all of them, one row per input and kind."""

    kappa: dict[str, Tensor]
    confidence: dict[str, Tensor]
    wrong: dict[str, Tensor]
    feature_sq: dict[str, Tensor]
    table: pd.DataFrame


def path_points(traj: Trajectory) -> PathPoints:
    """The clean, boundary and adversarial points of each input's path (claim 10, chapter confidence-flatness).

    Args:
        traj: the instrumented attack's record (:func:`flatrob.attacks.pgd` with ``track=True``), n inputs.

    Returns:
        A :class:`PathPoints`: per kind, the layer-wise relative sharpness, the confidence, whether the prediction
        is wrong and ``||phi||^2``, each of shape (n,) in float64; and the table of every point with its
        ``epsilon = 1 - max_s p_s`` (the sum of the other probabilities, exact where 1 - max would round to 0) and
        ``1 - ||p||^2``.
    """
    n = len(traj.labels)
    top2 = traj.probs.double().topk(2, dim=-1).values
    gap = top2[..., 0] - top2[..., 1]  # (T + 1, n)
    at = {
        "clean": torch.zeros(n, dtype=torch.long),
        "boundary": gap.argmin(0),
        "adversarial": torch.full((n,), traj.steps),
    }
    cols = torch.arange(n)

    def pick(stat: str, kind: str) -> Tensor:
        return traj.stats[stat][at[kind], cols].double()

    kappa = {k: pick("kappa_layer", k) for k in at}
    confidence = {k: pick("confidence", k) for k in at}
    wrong = {k: traj.pred[at[k], cols] != traj.labels for k in at}
    feature_sq = {k: pick("feature_norm", k) ** 2 for k in at}
    others = traj.uncertainty()
    table = pd.concat(
        [
            pd.DataFrame(
                {
                    "kind": k,
                    "kappa": kappa[k].numpy(),
                    "confidence": confidence[k].numpy(),
                    "wrong": wrong[k].numpy(),
                    "epsilon": others[at[k], cols].numpy(),
                    "1 - ||p||^2": (pick("trace", k) / pick("feature_norm", k) ** 2).numpy(),
                }
            )
            for k in at
        ]
    )
    return PathPoints(kappa, confidence, wrong, feature_sq, table)
