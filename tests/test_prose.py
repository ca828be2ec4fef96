"""Findings in words come from the checks, and fixed text never states a direction its checks contradict."""

from pathlib import Path

from flatrob.evidence import prose
from flatrob.evidence.ledger import entry, load
from flatrob.evidence.verdicts import Check, Estimate
from flatrob.util.paths import claims_dir

ROOT = Path(__file__).resolve().parents[1]


def test_no_chapter_states_what_its_committed_checks_contradict():
    assert prose.contradictions(ROOT / "book", load(claims_dir(ROOT))) == []


def fake_chapter(tmp_path, name, text):
    (tmp_path / f"{name}.md").write_text("---\njupytext: {}\n---\n" + text + "\n```{code-cell} ipython3\nx = 1\n```\n")


def basin_entry(verdict):
    c = Check(claim=7, part="basin", statement="s", verdict=verdict, evidence="e", setting={"definition": "absolute"})
    return entry(c, "basin", {})


def test_the_five_passages_are_caught_when_their_checks_disagree(tmp_path):
    fake_chapter(tmp_path, "basin", "The adversarially trained model walks 1.34 times as far; the label flips later.")
    fake_chapter(tmp_path, "confidence-flatness", "The attack's end points are mostly confidently wrong.")
    fake_chapter(tmp_path, "last-layer-scaling", "The median sharpness falls over the grid.")
    fake_chapter(tmp_path, "detector", "Each check is judged by the same rule as within one run.")
    shift = entry(
        Check(
            claim=7,
            part="shift",
            statement="s",
            verdict="partly",
            evidence="e",
            setting={"norm": "linf", "eps": 8 / 255},
        ),
        "uncanny-valley",
        {},
    )
    wrong = entry(
        Check(
            claim=10,
            part="attack",
            statement="s",
            verdict="not testable here",
            evidence="e",
            setting={"inputs": 300},
            values={"n_confidently_wrong": 3},
        ),
        "confidence-flatness",
        {},
    )
    median = entry(
        Check(
            claim=8,
            part="median",
            statement="s",
            verdict="not reproduced",
            evidence="e",
            setting={"variant": "bias scaled"},
        ),
        "last-layer-scaling",
        {},
    )
    committed = {
        "basin": {"entries": [basin_entry("partly")]},
        "uncanny-valley": {"entries": [shift]},
        "confidence-flatness": {"entries": [wrong]},
        "last-layer-scaling": {"entries": [median]},
    }
    found = prose.contradictions(tmp_path, committed)
    assert len(found) == 5, found
    # the same text is fine where the checks say so
    committed["basin"]["entries"] = [basin_entry("reproduced")]
    assert len(prose.contradictions(tmp_path, committed)) == 4


def test_fixed_text_leaves_out_code_and_front_matter():
    text = "---\njupytext: x\n---\nProse here.\n```{code-cell} ipython3\nprint('times as far')\n```\nMore prose."
    assert "times as far" not in prose.fixed_text(text) and "More prose." in prose.fixed_text(text)


def test_sentences_follow_the_verdicts():
    def valley_check(part, verdict, value, eps=8 / 255):
        values = {"n_flipped": 100, "n_start_correct": 271, "steps": 40, "n_samples": 300}
        if part == "rise":
            values["median peak/start"] = Estimate(value, value * 0.8, value * 1.2, 100).as_dict()
        else:
            values["final_over_peak"] = Estimate(value, value * 0.8, value * 1.2, 100).as_dict()
        return Check(
            claim=6,
            part=part,
            statement="s",
            verdict=verdict,
            evidence="e",
            values=values,
            setting={"eps": eps, "training": "clean", "source": "live"},
        )

    no = prose.valley(
        [valley_check("rise", "reproduced", 3.1), valley_check("collapse", "not reproduced", 0.65)], [8 / 255]
    )
    assert "which is no collapse (not reproduced)" in no and "rises 3.1-fold" in no
    yes = prose.valley(
        [valley_check("rise", "reproduced", 22.0), valley_check("collapse", "reproduced", 0.04)], [8 / 255]
    )
    assert "collapses after the flip to 0.04 of its peak" in yes
    assert "mostly confidently wrong" in prose.confidence(0.9, 200, 300, 0.1)
    assert "seldom confidently" in prose.confidence(0.6, 3, 300, 8 / 255)
    assert "mostly still right: 43% are wrong, 3 of 300" in prose.confidence(0.43, 3, 300, 8 / 255)


def test_directions_are_computed_from_the_ledger(tmp_path):
    """The guard reads the direction a check measured, not a fixed phrase: any wording of the opposite direction
    is caught, the same direction passes, and sentences that report the paper or ask are left alone."""

    def growth(value):
        c = Check(
            claim=8,
            part="loss-growth",
            statement="s",
            verdict="not reproduced",
            evidence="e",
            setting={"norm": "l2", "eps": 0.025},
            measure={"name": "log10 change", "value": value, "ci95": [value - 0.3, value + 0.3], "rule": {}},
        )
        return {"entries": [entry(c, "gradient-masking", {})]}

    fake_chapter(tmp_path, "gradient-masking", "On the points it can move, the weak attack did less and less.")
    assert len(prose.contradictions(tmp_path, {"gradient-masking": growth(2.5)})) == 1  # it grew 2.5 decades
    assert prose.contradictions(tmp_path, {"gradient-masking": growth(-0.5)}) == []  # it did shrink
    fake_chapter(tmp_path, "gradient-masking", "The loss increase shrinks as s grows larger in the median.")
    assert prose.contradictions(tmp_path, {"gradient-masking": growth(2.5)}) == []  # mixed words: no direction read
    fake_chapter(tmp_path, "gradient-masking", "The loss increases were lower at the largest scale.")
    assert len(prose.contradictions(tmp_path, {"gradient-masking": growth(2.5)})) == 1
    fake_chapter(tmp_path, "gradient-masking", "The paper reports that the loss increase falls with s.")
    assert prose.contradictions(tmp_path, {"gradient-masking": growth(2.5)}) == []  # the paper's claim, reported


def test_the_detector_path_paragraph_follows_the_detectors_thresholds():
    import pandas as pd

    from flatrob.evidence import prose

    def table(near, end):
        rows = [
            {"model": "clean", "position": p, "median step": s, "pairs": 500, "points": 1000,
             "sharpness accuracy": a, "sharpness correct": round(1000 * a), "confidence accuracy": a,
             "confidence correct": round(1000 * a), "log10 kappa, clean": 1.0, "log10 kappa, adversarial": 2.0}
            for p, s, a in (("first flip", 2, near), ("sharpness peak", 2, near), ("10", 10, end))
        ]  # fmt: skip
        return prose.path_intervals(pd.DataFrame(rows))

    text = prose.detector_path(table(0.96, 0.55), paper_step=10)
    assert "separates near the decision boundary and fails where the paper's attack ends" in text
    assert "confidence stump does as well" in text and "0.96 [0.946, 0.97]" in text
    assert "separates near the boundary and still at the paper's endpoint" in prose.detector_path(table(0.96, 0.95), 10)
    assert "does not reach 0.9 near the boundary either" in prose.detector_path(table(0.8, 0.55), 10)
    assert "does not explain" in prose.detector_path(table(0.8, 0.8), 10)
    assert prose.detector_path(table(0.9, 0.5).iloc[:0], 10).startswith("No input was fooled")


def test_row_a_in_words_names_the_unscaled_accuracy_and_which_scales_lie_apart():
    import pandas as pd

    from flatrob.evidence.prose import robust_by_scale

    own = "robust accuracy (own attack)"

    def table(values):
        return pd.DataFrame(
            [
                {"radius": r, "scale s": s, "seeds": 3, own: v, f"{own} lo": v - 0.02, f"{own} hi": v + 0.02}
                for r in (0.025, 0.25)
                for s, v in zip((0.25, 1.0, 50.0), values, strict=True)
            ]
        )

    text = robust_by_scale(table([0.80, 0.85, 0.99]), paper=0.9033)
    assert "keeps 0.85 [0.83, 0.87]" in text and "keeps 0.903" in text and "3 seeds" in text
    assert "$s$ = 0.25, 50 its interval lies apart" in text and "radius 0.025" in text
    assert "overlaps" in robust_by_scale(table([0.85, 0.85, 0.86]), paper=0.9033)
    assert robust_by_scale(table([0.85, 0.85, 0.86]).query("`scale s` != 1.0"), paper=0.9033) == ""
