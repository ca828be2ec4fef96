"""The report's tables and the figures' helpers, on a constructed ledger: the headline at the paper's setting beside
the small CNN, what still differs from the paper, fragile rows; the plots draw without error; the CPU pins."""

import os
import subprocess
import sys

import matplotlib
import numpy as np
import pandas as pd
import pytest

from flatrob.evidence import findings, ledger, report
from flatrob.evidence.claims import IN_WORDS
from flatrob.evidence.verdicts import Check, Estimate, Rule

matplotlib.use("Agg")

RULE = Rule("below", 0.1, refute=0.8)
PAPER = {"norm": "linf", "eps": 8 / 255, "steps": 10, "step_size": 2 / 255, "data": "fashion-mnist"}


def collapse(value, architecture, source, training="clean", seeds=None):
    e = Estimate(value, value * 0.8, value * 1.2, 1000)
    setting = PAPER | {"architecture": architecture, "epochs": 10, "training": training, "source": source}
    if seeds:
        setting |= {"seeds": seeds, "inputs": 1000}
    prov = {"commit": "abc", "device": "cpu (x86_64, 2 threads)", "params": {"adv_steps": 3, "n_train": 0}}
    check = Check(
        claim=6,
        part="collapse",
        statement="s",
        verdict=RULE.judge(e),
        evidence=f"median final/peak {e}",
        setting=setting,
        measure=e.measure("median final/peak", RULE),
        fragile=RULE.fragile(e),
        provenance=prov if source != "live" else None,
    )
    return ledger.entry(check, "uncanny-valley", prov | {"commit": "def"})


def claims():
    entries = [
        collapse(0.012, "wrn-10-1", "sweep residual", seeds=[0, 1, 2]),
        collapse(0.5, "wrn-10-1", "sweep residual", training="adversarial", seeds=[0, 1, 2]),
        collapse(1.2, "small-cnn", "live"),
    ]
    return ledger.build(
        {"uncanny-valley": {"format": ledger.LEDGER_FORMAT, "chapter": "uncanny-valley", "entries": entries}}
    )


def test_headline_puts_the_residual_sweep_beside_the_small_cnn():
    table = report.headline(claims())
    six = table[table.claim.str.startswith("6")].set_index("claim")
    assert list(six.index) == ["6 · clean", "6 · AT"]
    assert six.loc["6 · clean", "at the paper's setting"].startswith("reproduced")
    assert (
        "wrn-10-1" in six.loc["6 · clean", "at the paper's setting"] and "seeds 0, 1, 2" in six.loc["6 · clean"].iloc[2]
    )
    assert six.loc["6 · clean", "small CNN, the paper's attack"].startswith("not reproduced")
    assert six.loc["6 · AT", "at the paper's setting"].startswith("partly")
    seven = table[table.claim == "7"].iloc[0]
    assert seven["at the paper's setting"] == "not tested yet at the paper's setting"


def test_differences_are_computed_from_the_headline_settings():
    text = report.differences(claims())
    assert "fashion-mnist" in text and "wrn-10-1" in text and "10 epochs" in text and "3 PGD steps" in text
    assert "3 training seeds" in text and "1000 test inputs" in text
    assert report.differences([]).startswith("Nothing is checked")


def test_grid_and_rows_carry_fragility():
    grid = report.grid(claims())
    assert {"paper's setting, over seeds", "further settings, one run"} <= set(grid.setting)
    assert grid[grid.setting == "paper's setting, over seeds"].paper_setting.all()
    rows = report.rows(claims())
    assert set(rows.columns) >= {"row", "verdict"} and rows.set_index("row").loc["E", "verdict"].startswith("partly")


def test_plots_draw(monkeypatch):
    from flatrob import plotting
    from flatrob.valley import pooled_paths

    monkeypatch.setattr(plotting.plt, "show", lambda: None)
    plotting.verdict_grid(report.grid(claims()), "What holds where", "note")
    rng = np.random.default_rng(0)
    runs = {
        s: {
            "clean/kappa_layer": rng.random((11, 20)),
            "clean/wrong": np.r_[np.zeros((1, 20)), np.ones((10, 20))].astype(bool),
        }
        for s in range(3)
    }
    frame = pooled_paths(runs)
    assert set(frame.run) == {"0", "1", "2", "pooled"} and (frame[frame.run == "pooled"].n == 60).all()
    plotting.valley_band(frame, "title", "note")
    fig, ax = plotting.plt.subplots()
    plotting.confidence_band(ax, 1e-6)
    assert isinstance(frame, pd.DataFrame)


def test_cpu_pins_are_set_before_torch_and_can_be_turned_off():
    code = (
        "import flatrob, os, torch; "
        "print(os.environ.get('ATEN_CPU_CAPABILITY'), torch.backends.cpu.get_cpu_capability())"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR")}
    pinned = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert pinned.stdout.split() == ["avx2", "AVX2"]
    off = subprocess.run(
        [sys.executable, "-c", code], env=env | {"FLATROB_CPU_PINS": "0"}, capture_output=True, text=True, check=True
    )
    assert off.stdout.split()[0] == "None"


def test_a_claim_that_is_not_reproduced_says_why():
    from flatrob.evidence import ledger
    from flatrob.evidence.verdicts import Check, Estimate, Rule

    rule = Rule("above", 0.9, refute=0.75, margin=0.02)
    e = Estimate(0.55, 0.52, 0.58, 2000)
    setting = {"data": "fashion-mnist", "architecture": "wrn-10-1", "epochs": 10, "training": "clean", "norm": "linf"}
    setting |= {"eps": 8 / 255, "steps": 10, "step_size": 2 / 255, "source": "sweep s", "seeds": [0, 1, 2]}
    c = Check(claim=11, part="", statement="s", verdict=rule.judge(e), evidence="", setting=setting)
    c.measure = e.measure("held-out accuracy", rule)
    doc = {"detector": {"chapter": "detector", "entries": [ledger.entry(c, "detector", {"commit": "a"})]}}
    text = findings.reasons(ledger.build(doc), {11: "The stump separates near the boundary."})
    assert "**Claim 11** (not reproduced)" in text and "held-out accuracy 0.55 [0.52, 0.58]" in text
    assert "at least 0.9; not reproduced below 0.75" in text and text.endswith("The stump separates near the boundary.")
    assert "Claim 6" not in text  # nothing tested there: no reason to give


def test_a_chapters_discussion_says_what_held_what_did_not_and_what_differs():
    found = claims()  # claim 6: the clean row collapses (0.012), the adversarially trained one only to 0.5: partly
    text = findings.discussion(found, "uncanny-valley")
    held, rest, differs = text.split("\n\n**")[0], text.split("**What did not")[1], text.split("**What still")[1]
    assert "None of this chapter's claims" in held
    assert "**Claim 6** (partly)" in rest and "median final/peak 0.5 [0.4, 0.6]" in rest and "at most 0.1" in rest
    assert "fashion-mnist" in differs and "wrn-10-1" in differs
    clean_only = ledger.build({"uncanny-valley": {"format": ledger.LEDGER_FORMAT, "chapter": "uncanny-valley",
                                                  "entries": [collapse(0.012, "wrn-10-1", "sweep residual",
                                                                       seeds=[0, 1, 2])]}})  # fmt: skip
    text = findings.discussion(clean_only, "uncanny-valley")
    assert "The uncanny valley" in text.split("**What did not")[0] and "median final/peak 0.012" in text
    assert "every claim of this chapter is reproduced" in text
    assert "no verdict of this chapter" in findings.discussion(found, "basin")


def test_a_row_that_does_not_reach_the_regime_names_where_it_does_and_cells_name_their_measure():
    def at(eps, verdict, value, part="collapse", seeds=(0, 1, 2)):
        e = Estimate(value, value * 0.8, value * 1.2, 1000)
        setting = PAPER | {"eps": eps, "architecture": "wrn-10-1", "epochs": 10, "training": "adversarial",
                           "source": "sweep residual", "seeds": list(seeds), "inputs": 1000}  # fmt: skip
        name = "median final/peak" if part == "collapse" else "median peak/start"
        check = Check(claim=6, part=part, statement="s", verdict=verdict, evidence="e", setting=setting,
                      measure=e.measure(name, RULE) if verdict != "not reached in this regime" else None)  # fmt: skip
        return ledger.entry(check, "uncanny-valley", {"commit": "abc", "device": "cpu", "params": {}})

    # at 16/255 only the rise before the valley is measured (the collapse is not reached there): the row names 0.1,
    # the smallest radius where the claim's centre, the collapse, is itself measured
    entries = [collapse(0.012, "wrn-10-1", "sweep residual", seeds=[0, 1, 2]),
               at(8 / 255, "not reached in this regime", 0.9), at(0.2, "reproduced", 0.05),
               at(16 / 255, "partly", 3.0, part="rise"), at(16 / 255, "not reached in this regime", 1.0),
               at(0.1, "partly", 0.6)]  # fmt: skip
    found = ledger.build({"uncanny-valley": {"format": ledger.LEDGER_FORMAT, "chapter": "uncanny-valley",
                                             "entries": entries}})  # fmt: skip
    table = report.headline(found).set_index("claim")
    clean, adv = table.loc["6 · clean", "at the paper's setting"], table.loc["6 · AT", "at the paper's setting"]
    # the measure said in words first, its name and interval beside it
    assert clean.startswith("reproduced · sharpness ends at 1.2% of its peak (median final/peak 0.012 [")
    assert adv.startswith("not reached in this regime")
    reached = "reached at 0.1, 10 steps (sweep residual): partly · sharpness ends at 60% of its peak (median final/peak"
    assert f"{reached} 0.6 [0.48, 0.72])" in adv  # the smallest radius
    assert "0.2" not in adv.split("reached at")[1]


def test_a_value_says_how_much_its_measure_can_show_at_most():
    entry = {"measure": {"value": 2.33, "ci95": [2.04, 2.65]},
             "values": {"limits": {"0": {"cap": 51, "largest measurable ratio": 3.5},
                                   "1": {"cap": 51, "largest measurable ratio": 2.89}}}}  # fmt: skip
    assert report._value(entry) == "2.33 [2.04, 2.65] (at most 2.89 measurable here)"
    one_run = {"measure": {"value": 1.5, "ci95": [1.2, 1.8]}, "values": {"limits": {"largest measurable ratio": 1.6}}}
    assert report._value(one_run).endswith("(at most 1.6 measurable here)")
    assert report._value({"measure": {"value": 0.5, "ci95": [0.4, 0.6]}}) == "0.5 [0.4, 0.6]"


def test_a_cell_names_where_its_value_comes_from_and_shows_the_claims_centre_beside_the_deciding_part():
    e = Estimate(3.0, 2.5, 3.5, 1000)
    entries = []
    for part, verdict, name, seeds in (("rise", "not reproduced", "median peak/start", [0, 2]),
                                       ("collapse", "partly", "median final/peak", [0, 1, 2])):  # fmt: skip
        setting = PAPER | {"architecture": "wrn-10-1", "epochs": 10, "training": "clean", "source": "sweep s",
                           "seeds": seeds, "inputs": 1000}  # fmt: skip
        check = Check(claim=6, part=part, statement="s", verdict=verdict, evidence="e", setting=setting,
                      measure=e.measure(name, RULE))  # fmt: skip
        entries.append(ledger.entry(check, "uncanny-valley", {"commit": "abc", "device": "cpu", "params": {}}))
    found = ledger.build({"uncanny-valley": {"format": ledger.LEDGER_FORMAT, "chapter": "uncanny-valley",
                                             "entries": entries}})  # fmt: skip
    cell = report.headline(found).set_index("claim").loc["6", "at the paper's setting"]
    # the rise decided (not reproduced); the collapse, the claim's centre, stands beside it with its own verdict; the
    # origin names the seeds of the value shown (0, 2), not those of the first check
    assert cell == (
        "not reproduced · sharpness peaks at 3x its start (median peak/start 3 [2.5, 3.5]); "
        "median final/peak 3 [2.5, 3.5] (partly)"
        " · wrn-10-1, 10 epochs, seeds 0, 2"
    )


def test_a_figure_whose_text_runs_into_another_panel_or_past_its_cell_is_refused():
    from flatrob import plotting

    fig, (a, b) = plotting.plt.subplots(1, 2, figsize=(4, 2))
    b.set_ylabel("a long label of the right panel, no room made for it")
    assert any("runs into panel 1" in p for p in plotting.layout_problems(fig))
    with pytest.raises(plotting.FigureLayoutError):
        plotting.stamp(fig, "note")
    fig.tight_layout()
    assert plotting.layout_problems(fig) == []
    fig, ax = plotting.plt.subplots(figsize=(4, 2))
    ax.set(xlim=(0, 4), ylim=(0, 1))
    cell = ax.text(0.5, 0.5, "a text much wider than its cell", ha="center", va="center")
    cell.flatrob_box = (0, 0, 1, 1)
    assert plotting.layout_problems(fig) == ["'a text much wider than its cell' runs past its cell"]
    plotting._fit_in_cells(fig, ax)
    assert plotting.layout_problems(fig) == []
    # three survival panels side by side (the uncanny-valley chapter's): their legends stay in their panels
    fig, axes = plotting.plt.subplots(1, 3, figsize=(plotting.COLUMN_IN, 2.6), sharey=True)
    rng = np.random.default_rng(0)
    for ax in axes:
        times = {"clean": rng.integers(0, 12, 300).astype(float), "adversarial": rng.integers(0, 12, 268).astype(float)}
        plotting.survival_curves(times, 10, ax, "PGD iterate")
    fig.tight_layout()
    assert plotting.layout_problems(fig) == []
    plotting.plt.close("all")


def test_outside_the_test_suite_a_figure_with_a_layout_problem_is_drawn_with_a_warning(monkeypatch):
    from flatrob import plotting

    monkeypatch.delenv(plotting.STRICT_ENV)
    fig, (a, b) = plotting.plt.subplots(1, 2, figsize=(4, 2))
    b.set_ylabel("a long label of the right panel, no room made for it")
    with pytest.warns(plotting.FigureLayoutWarning, match="runs into panel 1"):
        plotting.stamp(fig, "note")
    plotting.plt.close("all")


def test_every_decisive_measure_of_the_committed_ledger_is_said_in_words():
    from flatrob.util.paths import claims_dir

    names = {e["measure"]["name"] for f in ledger.load(claims_dir()).values() for e in f["entries"] if e.get("measure")}
    assert names <= set(IN_WORDS), names - set(IN_WORDS)
    assert IN_WORDS["median kappa, confidently wrong / boundary"](0.0037) == (
        "confidently wrong points are 270x flatter than boundary points"
    )
    assert IN_WORDS["log10 change of the 0.9 quantile of the loss increases, smallest to largest s"](-26.5) == (
        "the largest loss increases fall by 26.5 decades as s grows"
    )
