"""flatrob.tables: one table, three forms (HTML with labelled cells, a LaTeX longtable, plain text)."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from flatrob.tables import fmt, latex_text, to_html, to_latex


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            r"check \(\kappa\)": ["6-peak", "10_attack & 50%", "<a href='#x'>12</a>"],
            "value": ["1.05·10⁻⁵", "0.92", "3"],
            "verdict": ["reproduced", "partly", "not testable here"],
        }
    )


def test_html_has_one_header_per_column_and_one_labelled_cell_per_value():
    df = frame()
    html = to_html(df)
    assert html.count("<th>") == df.shape[1]
    assert html.count("<tr>") == df.shape[0] + 1  # the header row and one per row
    cells = re.findall(r'<td><span class="flatrob-label">(.*?)</span>(.*?)</td>', html)
    assert len(cells) == df.size
    assert [c for c, _ in cells] == list(df.columns) * df.shape[0]  # each value under its own column's label
    assert [v for _, v in cells] == [str(v) for row in df.itertuples(index=False) for v in row]


@pytest.mark.parametrize("widths", [None, {r"check \(\kappa\)": 3.0, "value": 1.0, "verdict": 2.0}])
def test_latex_columns_fill_the_line_and_math_and_specials_survive(widths):
    df = frame()
    tex = to_latex(df, widths)
    spec = re.findall(r"p\{([0-9.]+)\\linewidth\}", tex)
    assert len(spec) == df.shape[1]
    assert sum(map(float, spec)) == pytest.approx(0.97, abs=2e-3)
    if widths is not None:  # proportions kept
        assert float(spec[0]) / float(spec[1]) == pytest.approx(3.0, rel=1e-2)
    assert r"\textbf{check $\kappa$}" in tex
    assert r"10\_attack \& 50\%" in tex
    assert "<a" not in tex and "href" not in tex and "\n12 & 3 & " in tex  # the anchor dropped, its text kept
    rows = [line for line in tex.splitlines() if line.endswith(r"\\")]
    assert len(rows) == df.shape[0] + 1
    assert all(line.count(" & ") == df.shape[1] - 1 for line in rows)  # escaped & never splits a cell


def test_latex_text_escapes_everything_outside_math():
    assert latex_text(r"a_b \(x_i^2\) 100% #1 {c} ~") == r"a\_b $x_i^2$ 100\% \#1 \{c\} \textasciitilde{}"
    assert latex_text("<span class='k'>x</span> < y") == r"x \textless{} y"


@pytest.mark.parametrize(
    "value, text",
    [
        (3, "3"),
        (3.0, "3"),
        (0.123456, "0.123"),
        (1.05e-5, "1.05·10⁻⁵"),
        (2.5e7, "2.5·10⁷"),
        (float("nan"), ""),
        (float("inf"), "∞"),
        (-float("inf"), "-∞"),
        (None, ""),
        (True, "True"),
        ("text", "text"),
    ],
)
def test_fmt(value, text):
    assert fmt(value) == text


def test_fmt_digits():
    assert fmt(3.14159, digits=5) == "3.1416"


def test_an_empty_table_is_one_line(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: shown.append(a))
    from flatrob.tables import show

    show(pd.DataFrame(columns=["check", "verdict"]))
    assert len(shown) == 1 and "no rows" in shown[0][0].data


def test_estimates_join_their_intervals_into_one_cell():
    from flatrob.tables import with_intervals

    df = pd.DataFrame({"s": [1.0], "acc": [0.8512], "acc lo": [0.83], "acc hi": [0.87], "n": [3]})
    out = with_intervals(df, ["acc"])
    assert list(out.columns) == ["s", "acc", "n"] and out.loc[0, "acc"] == "0.851 [0.83, 0.87]"
