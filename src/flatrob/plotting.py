"""Figure helpers: one seaborn style for the book, figures sized for its column, and a provenance footer on
every figure, below everything else the figure draws.

The book's column is about 700 px wide; a figure drawn at :data:`COLUMN_IN` inches and 110 dpi is shown at its
own size there (and fits the PDF's text width), so 10 pt text stays 10 pt.
"""

from __future__ import annotations

import os
import textwrap
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from flatrob.util.provenance import in_255ths

__all__ = [
    "COLUMN_IN",
    "MODEL_COLOURS",
    "colours_for",
    "VALLEY_STATS",
    "log_scalable",
    "layout_problems",
    "FigureLayoutError",
    "FigureLayoutWarning",
    "STRICT_ENV",
    "setup",
    "stamp",
    "survival_curves",
    "valley_curves",
    "confidence_band",
    "detector_path",
    "ladder",
    "mechanism",
    "scaling_regime",
    "valley_band",
    "verdict_grid",
]

#: The width of a figure that fills the book's column, in inches (at 110 dpi: about 700 px).
COLUMN_IN = 6.4


#: One colour per model across the whole book (seaborn's colour-blind palette): the clean model is always blue, the
#: adversarially trained one always orange, in every figure; other names take the palette's next colours.
MODEL_COLOURS = {"clean": 0, "adversarial": 1}


def colours_for(names: Sequence[str]) -> dict[str, Any]:
    """The colour of each model name (:data:`MODEL_COLOURS`; other names in their order, after the reserved ones).

    Args:
        names: the models a figure shows.

    Returns:
        {name: RGB colour}.
    """
    palette = sns.color_palette("colorblind", 10)
    out, free = {}, iter(i for i in range(10) if i not in MODEL_COLOURS.values())
    for name in dict.fromkeys(names):
        out[name] = palette[MODEL_COLOURS[name] if name in MODEL_COLOURS else next(free) % 10]
    return out


def setup() -> None:
    """The book's figure style: seaborn's whitegrid, colour-blind palette, 10 pt text, 110 dpi."""
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", font_scale=1.15)
    plt.rcParams.update({"figure.dpi": 110, "savefig.bbox": "tight", "legend.fontsize": 9, "axes.titlesize": 10.5})


class FigureLayoutError(ValueError):
    """A figure whose text runs into another panel or past the box it belongs in (see :func:`layout_problems`)."""


class FigureLayoutWarning(UserWarning):
    """What :func:`stamp` says under a figure whose layout has a problem, outside the test suite."""


#: The environment variable that makes :func:`stamp` refuse a figure whose layout has a problem ("raise").
STRICT_ENV = "FLATROB_FIGURE_CHECK"

#: How far (in pixels) a text may reach into another panel or past its box before it counts: anti-aliasing.
LAYOUT_SLACK_PX = 1.0


def layout_problems(fig: Figure) -> list[str]:
    """What a reader would see drawn over something else: a panel's legend, title, axis labels or placed texts
    reaching into another panel, and a placed text running past its own box (its panel, or the cell recorded in
    the text's ``flatrob_box`` attribute, a (x0, y0, x1, y1) box in data coordinates, as :func:`verdict_grid` does).

    Args:
        fig: a drawn or undrawn figure.

    Returns:
        One line per problem (empty when the layout is clean).
    """
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    panels = [ax for ax in fig.axes if ax.get_visible()]
    s = LAYOUT_SLACK_PX
    out = []
    for ax in panels:
        legend = ax.get_legend()
        texts = [*ax.texts, ax.title, ax.xaxis.label, ax.yaxis.label, *([legend] if legend is not None else [])]
        for item in texts:
            if not item.get_visible() or (hasattr(item, "get_text") and not item.get_text()):
                continue
            bb = item.get_window_extent(renderer)
            name = type(item).__name__.lower() if item is legend else repr(getattr(item, "get_text", str)()[:40])
            for other in panels:
                ob = other.bbox
                if (
                    other is not ax
                    and min(bb.x1, ob.x1) - max(bb.x0, ob.x0) > s
                    and min(bb.y1, ob.y1) - max(bb.y0, ob.y0) > s
                ):
                    out.append(f"{name} of panel {panels.index(ax) + 1} runs into panel {panels.index(other) + 1}")
            if item in ax.texts:
                box = getattr(item, "flatrob_box", None)
                if box is not None:
                    (x0, y0), (x1, y1) = ax.transData.transform([box[:2], box[2:]])
                    x0, x1, y0, y1 = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
                else:
                    x0, y0, x1, y1 = ax.bbox.x0, ax.bbox.y0, ax.bbox.x1, ax.bbox.y1
                if bb.x0 < x0 - s or bb.x1 > x1 + s or bb.y0 < y0 - s or bb.y1 > y1 + s:
                    out.append(f"{name} runs past its {'cell' if box is not None else 'panel'}")
    return out


def stamp(fig: Figure, line: str) -> Figure:
    """Write ``line`` (see :func:`flatrob.util.provenance.provenance_line`) under everything the figure draws (axes,
    their labels, legends), wrapped to the figure's width, in 7.5 pt monospace, after checking the layout
    (:func:`layout_problems`): a problem is a warning under the figure, or an error where :data:`STRICT_ENV` is
    "raise" (the test suite sets it, so that a chapter whose figure overlaps fails its test).

    Raises:
        FigureLayoutError: under :data:`STRICT_ENV`, when a text runs into another panel or past its box.
    """
    problems = layout_problems(fig)
    if problems:
        message = "; ".join(dict.fromkeys(problems))
        if os.environ.get(STRICT_ENV) == "raise":
            raise FigureLayoutError(message)
        warnings.warn(f"figure layout: {message}", FigureLayoutWarning, stacklevel=2)
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    boxes = [a.get_tightbbox(renderer) for a in [*fig.axes, *fig.legends]]
    bottom = min((b.y0 for b in boxes if b is not None), default=0.0) / fig.bbox.height
    width = max(60, int(fig.get_figwidth() * 72 / (7.5 * 0.6)))  # characters of 7.5 pt monospace per line
    fig.text(
        0.0,
        bottom - 0.015,
        textwrap.fill(line, width=width),
        fontsize=7.5,
        color="0.35",
        ha="left",
        va="top",
        family="monospace",
    )
    return fig


def log_scalable(values: Any) -> bool:
    """Whether a log axis can show ``values``: at least one is finite and positive (else leave the axis linear)."""
    v = np.asarray(values, dtype=float)
    return bool(np.any(np.isfinite(v) & (v > 0)))


#: The statistics of :func:`valley_curves`, with their axis labels.
VALLEY_STATS = {
    "kappa_layer": r"relative sharpness $\kappa_{\mathrm{layer}}$",
    "loss": "cross-entropy loss",
    "confidence": r"confidence $\max_s p_s$",
    "feature_norm": r"feature norm $\|\phi\|$",
}


def valley_curves(data: pd.DataFrame, path: str, title: str, note: str) -> None:
    """Median and quartiles along the paths of :func:`flatrob.valley.curves` tables, one colour per model.

    ``data``: the long table (step, stat, q25, median, q75, flipped, model, path); ``path`` selects the paths
    ("PGD", "to gaussian noise", ...); ``note`` is the provenance line. The dashed line in the sharpness panel
    marks the step at which half of the inputs that started correct have flipped. Shows the figure once.
    """
    fig, axes = plt.subplots(2, 2, figsize=(COLUMN_IN, 5.2), sharex=True)
    colours = colours_for(list(data["model"].unique()))
    for ax, (stat, label) in zip(axes.flat, VALLEY_STATS.items()):
        for name, part in data[(data.stat == stat) & (data.path == path)].groupby("model", sort=False):
            ax.plot(part.step, part["median"], color=colours[name], label=name)
            ax.fill_between(part.step, part.q25, part.q75, color=colours[name], alpha=0.2)
            if stat == "kappa_layer":
                flips = part.step[part.flipped >= 0.5]
                if len(flips):
                    ax.axvline(flips.iloc[0], color=colours[name], ls="--", lw=1)
        ax.set_title(label)
        if ax in axes[-1]:
            ax.set_xlabel("PGD iterate" if path == "PGD" else "step towards noise")
        if stat in ("kappa_layer", "loss") and log_scalable(data[data.stat == stat]["median"]):
            ax.set_yscale("log")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.suptitle(title, x=0.01, ha="left", fontsize=10.5)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    fig.legend(
        handles,
        labels,
        title="model (dashed: half flipped)",
        loc="lower center",
        ncol=max(1, len(labels)),
        bbox_to_anchor=(0.5, 0.0),
        frameon=False,
    )
    stamp(fig, note)
    plt.show()


def valley_band(data: pd.DataFrame, title: str, note: str) -> None:
    """The valley over inputs and seeds (:func:`flatrob.valley.pooled_paths` of the relative sharpness): per model,
    the median over all inputs of all seeds (line), their quartiles (band) and each seed's median (thin lines);
    the dashed line marks the step at which half of the inputs have flipped."""
    fig, ax = plt.subplots(figsize=(COLUMN_IN * 0.8, 3.2))
    colours = colours_for(sorted(data["model"].unique()))
    for model, part in data.groupby("model", sort=True):
        pooled = part[part.run == "pooled"]
        n = int(pooled["n"].iloc[0]) if len(pooled) else 0
        ax.plot(pooled.step, pooled["median"], color=colours[model], lw=2, label=f"{model} ({n} inputs)")
        ax.fill_between(pooled.step, pooled.q25, pooled.q75, color=colours[model], alpha=0.2)
        for _, seed in part[part.run != "pooled"].groupby("run"):
            ax.plot(seed.step, seed["median"], color=colours[model], lw=0.7, alpha=0.7)
        half = pooled.step[pooled.flipped >= 0.5]
        if len(half):
            ax.axvline(half.iloc[0], color=colours[model], ls="--", lw=1)
    if log_scalable(data["median"]):
        ax.set_yscale("log")
    ax.set(xlabel="PGD iterate", ylabel=r"relative sharpness $\kappa_{\mathrm{layer}}$")
    ax.set_title(title, fontsize=10, loc="left")
    ax.legend(title="median, quartiles; thin: each seed", fontsize=8, title_fontsize=8, loc="best")
    fig.tight_layout()
    stamp(fig, note)
    plt.show()


def detector_path(data: pd.DataFrame, paper: tuple[float, float], note: str) -> None:
    """Row F along the path (:func:`flatrob.detection.detector_along_path`, with Wilson interval columns
    ``<stump> lo`` and ``<stump> hi``): per model, the held-out accuracy of the sharpness and the confidence stump at
    each position on the path, with error bars; the dashed line is chance, the band the paper's accuracy."""
    models = list(dict.fromkeys(data["model"]))
    if not len(data):  # no input fooled anywhere on the path: say so where the figure would be
        fig, ax = plt.subplots(figsize=(COLUMN_IN, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no input was fooled on the path: no pair to score", ha="center", va="center")
        stamp(fig, note)
        plt.show()
        return
    fig, axes = plt.subplots(1, len(models), figsize=(COLUMN_IN, 3.0), sharey=True, squeeze=False)
    colours = dict(zip(("sharpness", "confidence"), sns.color_palette("colorblind")[2:4], strict=True))
    for ax, model in zip(axes[0], models, strict=True):
        part = data[data.model == model].reset_index(drop=True)
        where = np.arange(len(part))
        for offset, stump in ((-0.1, "sharpness"), (0.1, "confidence")):
            y = part[f"{stump} accuracy"].to_numpy()
            err = np.vstack([y - part[f"{stump} lo"].to_numpy(), part[f"{stump} hi"].to_numpy() - y])
            ax.errorbar(where + offset, y, yerr=err, fmt="o", ms=4, capsize=2, color=colours[stump], label=stump)
        ax.axhline(0.5, color="0.4", ls="--", lw=1)
        ax.axhspan(*paper, color="0.85", zorder=0)
        ax.set_xticks(where, [p.replace("sharpness ", "") for p in part["position"]], rotation=35, ha="right")
        ax.set(title=f"{model} model", xlabel="where the adversarial point is taken", ylim=(0.3, 1.02))
    axes[0][0].set_ylabel("held-out accuracy")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(
        handles,
        [f"{lab} stump" for lab in labels],
        loc="upper center",
        ncol=2,
        frameon=False,
        bbox_to_anchor=(0.5, 1.02),
    )
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    stamp(fig, note)
    plt.show()


def ladder(table: pd.DataFrame, lines: Mapping[str, float], note: str) -> None:
    """The valley along a ladder of attack budgets (:func:`flatrob.evidence.ladder.ladder_table`), one line per
    model: left, the share of the inputs that flip within the path (Wilson intervals), with the share below which
    the attack does not reach the regime (``lines["reaches"]``); right, how deep the flipped inputs' sharpness
    collapses, final/peak (the seeds' geometric mean, t-interval over seeds; an open marker where the attack does
    not reach the regime), with the claim's threshold (``lines["collapse"]``). Radii on a log axis, labelled in
    255ths where they are whole (up to 32/255)."""
    fig, axes = plt.subplots(1, 2, figsize=(COLUMN_IN, 2.9))
    models = sorted(dict.fromkeys(table["model"]), key=lambda m: m != "clean")  # the clean model first
    colours = colours_for(models)
    for model in models:
        part = table[table.model == model].sort_values("radius")
        r = part["radius"].to_numpy()
        y = part["flip share"].to_numpy()
        err = np.vstack([y - part["flip lo"].to_numpy(), part["flip hi"].to_numpy() - y])
        axes[0].errorbar(r, y, yerr=err, fmt="o-", ms=4, capsize=2, color=colours[model], label=str(model))
        depth = part["final/peak"].to_numpy(dtype=float)
        lo, hi = part["collapse lo"].to_numpy(dtype=float), part["collapse hi"].to_numpy(dtype=float)
        ok = np.isfinite(depth)
        span = np.vstack([depth - np.where(np.isfinite(lo), lo, depth), np.where(np.isfinite(hi), hi, depth) - depth])
        axes[1].errorbar(r[ok], depth[ok], yerr=span[:, ok], fmt="o-", ms=4, capsize=2, color=colours[model])
        off = ok & ~part["reaches"].to_numpy(dtype=bool)  # not in the regime: an open marker
        axes[1].plot(r[off], depth[off], "o", ms=4, mfc="white", color=colours[model])
    axes[0].axhline(lines["reaches"], color="0.4", ls="--", lw=1)
    axes[1].axhline(lines["collapse"], color="0.4", ls="--", lw=1)
    axes[0].set(ylabel="share that flips within the path", ylim=(-0.02, 1.02))
    axes[1].set(ylabel="final / peak sharpness", yscale="log")
    radii = sorted(set(table["radius"]))
    labels = [in_255ths(x) or f"{x:.2g}" for x in radii]
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xticks(radii, labels, rotation=45, ha="right")
        ax.minorticks_off()
        ax.set_xlabel("attack radius")
    fig.legend(
        *axes[0].get_legend_handles_labels(), loc="upper center", ncol=2, frameon=False, bbox_to_anchor=(0.5, 1.0)
    )
    fig.tight_layout(rect=(0, 0, 1, 0.88))
    stamp(fig, note)
    plt.show()


def mechanism(runs: pd.DataFrame, fit: Mapping[str, Any], note: str) -> None:
    """The collapse depth against the final confidence, one point per run (``runs``: columns ``final/peak``,
    ``final confidence``, ``epochs``, ``family``: what the network is made of), on log axes, with the line of
    :func:`flatrob.evidence.study.mechanism` (``fit``: its slope and intercept in log10)."""
    fig, ax = plt.subplots(figsize=(COLUMN_IN, 3.4))
    frame = runs.assign(**{"1 - final confidence": 1 - runs["final confidence"]})
    sns.scatterplot(
        data=frame,
        x="1 - final confidence",
        y="final/peak",
        hue="family",
        style="epochs",
        s=36,
        palette=dict(zip(sorted(frame.family.unique()), sns.color_palette("colorblind")[2:])),
        ax=ax,
    )
    grid = np.logspace(np.log10(frame["1 - final confidence"].min()), np.log10(frame["1 - final confidence"].max()))
    ax.plot(grid, 10 ** (fit["slope"] * np.log10(grid) + fit["intercept"]), color="0.3", lw=1, ls="--", label="fit")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="1 - final confidence (median over inputs)",
        ylabel="final / peak sharpness (median)",
    )
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), frameon=False, fontsize="small")
    fig.tight_layout()
    stamp(fig, note)
    plt.show()


def scaling_regime(sharp: pd.DataFrame, growth: pd.DataFrame, note: str) -> None:
    """Claim 8 in the paper's regime, one thin line per seed: left, the median relative sharpness against the
    last-layer scale s (``sharp``: columns seed, s, median); right, the loss increases under the weak attack on the
    same inputs at every s (``growth``: columns seed, s, quantile ("median", "0.9 quantile"), log10 increase).
    Both on log axes."""
    fig, axes = plt.subplots(1, 2, figsize=(COLUMN_IN, 2.9))
    grey = sns.color_palette("colorblind")[0]
    for _, part in sharp.groupby("seed"):
        axes[0].plot(part["s"], part["median"], "o-", ms=3, lw=1, color=grey)
    axes[0].set(xscale="log", yscale="log", xlabel="last-layer scale $s$", ylabel=r"median $\kappa_{\mathrm{layer}}$")
    styles = {
        "median": ("o-", sns.color_palette("colorblind")[2]),
        "0.9 quantile": ("s--", sns.color_palette("colorblind")[3]),
    }
    for (_, q), part in growth.groupby(["seed", "quantile"], sort=False):
        fmt, colour = styles[q]
        axes[1].plot(part["s"], part["log10 increase"], fmt, ms=3, lw=1, color=colour, label=q)
    handles, labels = axes[1].get_legend_handles_labels()
    keep = dict(zip(labels, handles, strict=True))  # one entry per quantile, not per seed
    axes[1].legend(keep.values(), keep.keys(), frameon=False, fontsize="small")
    axes[1].set(xscale="log", xlabel="last-layer scale $s$", ylabel=r"$\log_{10}$ loss increase")
    fig.tight_layout()
    stamp(fig, note)
    plt.show()


def confidence_band(ax: Any, eps_min: float, *, fill: bool = True) -> None:
    """The band of the corollary (:prf:ref:`cor-confident-flat`), ``eps (1 - eps) <= 1 - ||p||^2 <= 2 eps`` with
    ``eps = 1 - max_s p_s``, on log axes from ``eps_min`` to 0.9: filled (``fill``) or as its two edges."""
    grid = np.logspace(np.log10(max(eps_min, 1e-300)), np.log10(0.9), 200)
    if fill:
        ax.fill_between(grid, grid * (1 - grid), np.minimum(2 * grid, 1), color="0.5", alpha=0.15, label="band")
    else:
        ax.plot(grid, 2 * grid, color="0.3", lw=1, ls="--", label=r"$2\varepsilon$")
        ax.plot(grid, grid * (1 - grid), color="0.3", lw=1, ls=":", label=r"$\varepsilon(1-\varepsilon)$")


def survival_curves(times: Mapping[str, Sequence[float] | np.ndarray], cap: int, ax: Any, xlabel: str) -> None:
    """The share of inputs not yet flipped (or risen) at each step, one line per model: the survival curve of
    censored times, ``cap`` marking "never within the path". ``times``: model -> times (n,), NaN left out."""
    steps = np.arange(cap + 1)
    colours = colours_for(list(times))
    for name, t in times.items():
        v = np.asarray(t, dtype=float)
        v = v[np.isfinite(v)]
        if len(v):
            ax.step(
                steps,
                [(v > s).mean() for s in steps],
                where="post",
                color=colours[name],
                label=f"{name}\n{int((v >= cap).sum())} of {len(v)} never",
            )
    ax.set(xlabel=xlabel, ylabel="share of inputs not yet", ylim=(-0.02, 1.02))
    # two short lines per entry, so that the legend fits a third of the column (three panels side by side)
    ax.legend(fontsize=7, loc="lower left", handlelength=1.2, borderaxespad=0.3)


#: Colours of the verdicts in :func:`verdict_grid` (colour-blind safe, legible in light and dark mode).
VERDICT_COLOURS = {
    "reproduced": "#1b9e77",
    "partly": "#e6ab02",
    "not reproduced": "#d95f02",
    "holds by construction": "#7570b3",
    "not reached in this regime": "#80b1d3",
    "cannot decide here": "#d9d9d9",
    "not testable here": "#999999",
}


def _fit_in_cells(fig: Figure, ax: Any) -> None:
    """Fit each text of ``ax`` that has a ``flatrob_box`` (its cell, in data coordinates) into its cell: at its own
    size, else wrapped into shorter lines, else smaller (down to 5 pt), the first that fits."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    for text in ax.texts:
        box = getattr(text, "flatrob_box", None)
        if box is None:
            continue
        (x0, y0), (x1, y1) = ax.transData.transform([box[:2], box[2:]])
        room = (abs(x1 - x0) - 2, abs(y1 - y0) - 2)
        lines, size = text.get_text().split("\n"), text.get_fontsize()
        tries = [(w, s) for s in (size, size - 0.5, size - 1) for w in (0, 36, 30, 26, 22)] + [(18, 5.0), (14, 5.0)]
        for width, points in tries:
            text.set_text("\n".join(textwrap.fill(line, width) if width else line for line in lines))
            text.set_fontsize(points)
            bb = text.get_window_extent(renderer)
            if bb.width <= room[0] and bb.height <= room[1]:
                break


def verdict_grid(table: pd.DataFrame, title: str, note: str) -> None:
    """Claims against settings: one cell per (claim, setting) coloured by its verdict, with the decisive value
    and its interval written in, the paper's setting marked. ``table``: columns claim, setting, verdict, text,
    paper_setting."""
    claims = list(dict.fromkeys(table["claim"]))
    settings = list(dict.fromkeys(table["setting"]))
    # the title and the legend in an axis of their own above the grid: they cannot overlap it or each other
    fig, (top, ax) = plt.subplots(
        2, 1, figsize=(COLUMN_IN, 0.55 * len(claims) + 2.4), gridspec_kw={"height_ratios": [0.9, 0.55 * len(claims)]}
    )
    for _, row in table.iterrows():
        i, j = claims.index(row["claim"]), settings.index(row["setting"])
        ax.add_patch(
            Rectangle(
                (j, i),
                0.96,
                0.9,
                color=VERDICT_COLOURS.get(row["verdict"], "#cccccc"),
                ec="black" if row["paper_setting"] else "none",
                lw=1.6,
            )
        )
        cell = ax.text(j + 0.48, i + 0.45, row["text"], ha="center", va="center", fontsize=6.5, color="black")
        cell.flatrob_box = (j, i, j + 0.96, i + 0.9)  # its cell, for layout_problems
    ax.set(
        xlim=(0, len(settings)),
        ylim=(len(claims), 0),
        xticks=np.arange(len(settings)) + 0.48,
        yticks=np.arange(len(claims)) + 0.45,
    )
    ax.set_xticklabels(settings, rotation=30, ha="right", fontsize=7.5)
    ax.set_yticklabels(claims, fontsize=8)
    ax.grid(False)
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in VERDICT_COLOURS.values()]
    top.axis("off")
    top.legend(handles, list(VERDICT_COLOURS), loc="center", ncol=4, fontsize=7, frameon=False)
    top.set_title(title, fontsize=10)
    fig.tight_layout()
    _fit_in_cells(fig, ax)
    stamp(fig, note)
    plt.show()
