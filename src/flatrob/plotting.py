"""Figure helpers: one seaborn style for the book and a provenance footer on every figure."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import seaborn as sns
from matplotlib.figure import Figure

__all__ = ["setup", "stamp"]


def setup() -> None:
    """The book's figure style."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    plt.rcParams["figure.dpi"] = 110


def stamp(fig: Figure, line: str, width: int = 120) -> Figure:
    """Write ``line`` (see :func:`flatrob.runs.provenance_line`) in small print under the figure."""
    wrapped = textwrap.fill(line, width=width)
    n_lines = wrapped.count("\n") + 1
    fig.text(0.01, 0.0, wrapped, fontsize=7, color="0.35", ha="left", va="top", family="monospace")
    fig.subplots_adjust(bottom=max(fig.subplotpars.bottom, 0.08 + 0.03 * n_lines))
    return fig
