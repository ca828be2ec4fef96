"""Tables as a reader meets them: one display that carries HTML for the web book and LaTeX for the PDF.

A pandas ``Styler`` offers LaTeX only when asked (``styler.render.repr``), so a PDF build would print its
``repr``; :func:`show` displays both forms at once and lets MyST-NB pick: HTML (:func:`to_html`; math in
``\\(...\\)``, typeset by MathJax; every cell labelled with its column so that a table too wide for a phone can be
stacked) for the web book, a LaTeX ``longtable`` with wrapped columns (:func:`to_latex`; math as ``$...$``,
everything else escaped) for the PDF, and plain text elsewhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from flatrob.util.provenance import interval_text

__all__ = ["fmt", "latex_text", "show", "to_html", "to_latex"]

_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}
_MATH = re.compile(r"\\\((.+?)\\\)")


_TAG = re.compile(r"</?(?:span|a|code|b|i|em|strong)\b[^>]*>")


def latex_text(text: str) -> str:
    """A cell's text for LaTeX: HTML tags (anchors) dropped, its math (``\\(...\\)``) kept as ``$...$``, everything
    else escaped."""
    text = _TAG.sub("", text)
    out, pos = [], 0
    for m in _MATH.finditer(text):
        out.append("".join(_SPECIAL.get(ch, ch) for ch in text[pos : m.start()]))
        out.append(f"${m.group(1)}$")
        pos = m.end()
    out.append("".join(_SPECIAL.get(ch, ch) for ch in text[pos:]))
    return "".join(out)


def fmt(value: Any, digits: int = 3) -> str:
    """A number in a table: ``digits`` significant digits, never broken (no ``e-`` split across lines: ``1.05e-05``
    is written ``1.05·10⁻⁵``), integers as integers, NaN as an empty cell."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "" if value is None else str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "" if math.isnan(value) else ("∞" if value > 0 else "-∞")
    if isinstance(value, int) or float(value).is_integer() and abs(value) < 1e6:
        return f"{int(value):d}"
    text = f"{value:.{digits}g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        sup = str(int(exponent)).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))
        return f"{mantissa}·10{sup}"
    return text


def with_intervals(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``df`` with each of ``columns`` and its ``<column> lo``/``<column> hi`` joined into one cell, "value [lo, hi]"
    (numbers by :func:`fmt`), the ``lo``/``hi`` columns dropped: a table of estimates a reader takes in at once."""
    out = df.copy()
    for c in columns:
        triples = zip(df[c], df[f"{c} lo"], df[f"{c} hi"], strict=True)
        out[c] = [interval_text(v, lo, hi, fmt) for v, lo, hi in triples]
    return out.drop(columns=[f"{c} {end}" for c in columns for end in ("lo", "hi")])


def to_latex(df: pd.DataFrame, widths: Mapping[str, float] | None = None) -> str:
    """A LaTeX longtable of ``df`` (no index) whose columns wrap: widths in fractions of the line, given or
    proportional to the longest cell of each column (at least 8%)."""
    cols = list(df.columns)
    if widths is None:
        longest = {c: max([len(str(c)), *(len(str(v)) for v in df[c])]) for c in cols}
        total = sum(min(n, 60) for n in longest.values()) or 1
        widths = {c: max(0.08, min(longest[c], 60) / total) for c in cols}
    scale = 0.97 / sum(widths[c] for c in cols)
    spec = "".join(rf">{{\raggedright\arraybackslash}}p{{{widths[c] * scale:.3f}\linewidth}}" for c in cols)
    head = " & ".join(rf"\textbf{{{latex_text(str(c))}}}" for c in cols) + r" \\"
    rows = [" & ".join(latex_text(str(v)) for v in row) + r" \\" for row in df.itertuples(index=False)]
    return "\n".join(
        [
            r"{\small",
            rf"\begin{{longtable}}{{{spec}}}",
            r"\hline",
            head,
            r"\hline",
            r"\endhead",
            *rows,
            r"\hline",
            r"\end{longtable}",
            "}",
        ]
    )


def to_html(df: pd.DataFrame) -> str:
    """An HTML table of ``df`` (no index; cells are trusted HTML made by this library). Every cell also carries its
    column's name in a ``flatrob-label`` span, hidden unless the table does not fit the column: then the book's
    ``fit-math.js`` stacks it, one block per row, each value under its label (a phone reads it without scrolling)."""
    head = "".join(f"<th>{c}</th>" for c in df.columns)
    cell = '<td><span class="flatrob-label">{}</span>{}</td>'
    body = "".join(
        "<tr>" + "".join(cell.format(c, v) for c, v in zip(df.columns, row)) + "</tr>"
        for row in df.itertuples(index=False)
    )
    return f'<table class="flatrob-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def show(
    df: pd.DataFrame,
    *,
    formats: Mapping[str, Callable[[Any], str]] | None = None,
    widths: Mapping[str, float] | None = None,
) -> None:
    """Display ``df`` without its index, numbers formatted by :func:`fmt` (or ``formats`` per column), as HTML,
    LaTeX and plain text at once (the book and the PDF each take theirs); an empty table as one line saying so."""
    from IPython.display import Markdown, display

    if df.empty:
        display(Markdown("*(no rows)*"))
        return
    shown = df.reset_index(drop=True).copy()
    for c in shown.columns:
        f = (formats or {}).get(c, fmt)
        shown[c] = [f(v) for v in shown[c]]
    html = to_html(shown)
    plain = shown.map(lambda v: _TAG.sub("", v)).to_string(index=False)
    display({"text/html": html, "text/latex": to_latex(shown, widths), "text/plain": plain}, raw=True)
