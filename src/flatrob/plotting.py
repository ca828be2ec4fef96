"""Figure helpers: one seaborn style for the book and a provenance footer on every figure."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import seaborn as sns
from matplotlib.figure import Figure

__all__ = ["VALLEY_STATS", "log_scalable", "setup", "stamp", "valley_curves"]


def setup() -> None:
    """The book's figure style."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    plt.rcParams["figure.dpi"] = 110


def stamp(fig: Figure, line: str) -> Figure:
    """Write ``line`` (see :func:`flatrob.provenance.provenance_line`) under the figure, readably (9 pt).

    Wrapped to the figure's width, so that it stays readable when the page shows the figure at its width.
    """
    width = max(60, int(fig.get_figwidth() * 72 / (9 * 0.62)))  # characters of 9 pt monospace per line
    wrapped = textwrap.fill(line, width=width)
    fig.text(0.01, -0.01, wrapped, fontsize=9, color="0.3", ha="left", va="top", family="monospace")
    return fig


def log_scalable(values) -> bool:
    """Whether a log axis can show ``values``: at least one is finite and positive (else leave the axis linear)."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    return bool(np.any(np.isfinite(v) & (v > 0)))


#: The statistics of :func:`valley_curves`, with their axis labels.
VALLEY_STATS = {
    "kappa_layer": r"relative sharpness $\kappa_{\mathrm{layer}}$",
    "loss": "cross-entropy loss",
    "confidence": r"confidence $\max_s p_s$",
    "feature_norm": r"feature norm $\|\phi\|$",
}


def valley_curves(data, path: str, title: str, note: str) -> Figure:
    """Median and quartiles along the paths of :func:`flatrob.attacks.curves` tables, one colour per model.

    ``data``: the long table (step, stat, q25, median, q75, flipped, model, path); ``path`` selects the paths
    ("PGD", "to gaussian noise", ...); ``note`` is the provenance line. The dashed line in the sharpness panel
    marks the step at which half of the inputs that started correct have flipped.
    """
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    colours = dict(zip(data["model"].unique(), sns.color_palette()))
    for ax, (stat, label) in zip(axes.flat, VALLEY_STATS.items()):
        for name, part in data[(data.stat == stat) & (data.path == path)].groupby("model", sort=False):
            ax.plot(part.step, part["median"], color=colours[name], label=name)
            ax.fill_between(part.step, part.q25, part.q75, color=colours[name], alpha=0.2)
            if stat == "kappa_layer":
                flips = part.step[part.flipped >= 0.5]
                if len(flips):
                    ax.axvline(flips.iloc[0], color=colours[name], ls="--", lw=1)
        ax.set(title=label, xlabel="iteration" if path == "PGD" else "step towards noise")
        if stat in ("kappa_layer", "loss") and log_scalable(data[data.stat == stat]["median"]):
            ax.set_yscale("log")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, title="model (dashed: half flipped)", loc="upper right", ncol=len(labels))
    fig.suptitle(title, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    stamp(fig, note)
    plt.show()
    return fig
