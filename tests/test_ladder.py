"""Claim 7 along the budget ladder: where each model's valley forms and whether the adversarially trained one is only
later or also shallower, from per-input tables of several seeds."""

import math

import numpy as np
import pandas as pd

from flatrob.evidence.ladder import ladder_finding, ladder_table

EIGHT = 8 / 255


def run(seed, rows, n=200, steps=20):
    """One seed's ladder.csv: rows = [(model, radius, share that flips, flip step, median final/peak)]."""
    rng = np.random.default_rng(seed)
    frames = []
    for model, radius, share, step, depth in rows:
        flipped = rng.random(n) < share
        frames.append(pd.DataFrame({
            "radius": radius, "model": model, "steps": steps, "input": np.arange(n),
            "time_to_flip": np.where(flipped, step + rng.integers(0, 2, n), steps + 1).astype(float),
            "flipped": flipped,
            "peak_over_start": np.where(flipped, 50 * rng.lognormal(0, 0.3, n), np.nan),
            "final_over_peak": np.where(flipped, depth * rng.lognormal(0, 0.3, n), np.nan),
            "flip_step": np.where(flipped, step, np.nan), "peak_step": np.where(flipped, step, np.nan),
            "final_confidence": np.where(flipped, 0.99, np.nan),
        }))  # fmt: skip
    return {"seed": seed, "data": pd.concat(frames, ignore_index=True)}


def ladder(at_depth):
    rows = [("clean", EIGHT, 0.98, 2, 0.01), ("clean", 0.1, 1.0, 1, 0.001),
            ("adversarial", EIGHT, 0.05, 3, 0.9), ("adversarial", 0.1, 0.9, 4, at_depth)]  # fmt: skip
    return ladder_table([run(s, rows) for s in range(3)])


def test_the_ladder_pools_counts_and_seeds():
    table = ladder(0.02).set_index(["model", "radius"])
    at = table.loc[("adversarial", EIGHT)]
    assert at.inputs == 600 and not at.reaches and at["flip lo"] < at["flip share"] < at["flip hi"] < 0.25
    assert math.isinf(at["half-flip step"])  # fewer than half flip within the path
    reached = table.loc[("adversarial", 0.1)]
    assert reached.reaches and reached["half-flip step"] in (4, 5) and reached.collapses == "reproduced"
    assert reached["collapse lo"] < reached["final/peak"] < reached["collapse hi"] < 0.1
    assert table.loc[("clean", EIGHT)].reaches and table.loc[("clean", EIGHT), "half-flip step"] in (2, 3)


def test_only_later_or_shallower_follows_the_collapse_rule():
    later = ladder_finding(ladder(0.02))
    assert "reaches it only at 0.1" in later and "not at 8/255" in later and "does not make it shallower" in later
    shallow = ladder_finding(ladder(0.5))
    assert "decided at no radius" in shallow and "later and shallower" in shallow and "0.1: 0.5 [" in shallow
    refuted = ladder_finding(ladder(0.95))
    assert "shallower, not only later" in refuted and "refuted" in refuted
    never = ladder_table([run(s, [("clean", EIGHT, 0.98, 2, 0.01), ("adversarial", EIGHT, 0.05, 3, 0.9)])
                          for s in range(3)])  # fmt: skip
    assert "reaches it at no radius of the ladder" in ladder_finding(never)
    assert ladder_finding(ladder_table([])) == ""


def test_the_ladder_sweep_is_the_paper_kind_sweep_with_the_most_radii():
    from flatrob.evidence.ladder import ladder_runs

    def result(sweep, arch, radii):
        frame = pd.concat([run(0, [("clean", r, 0.9, 2, 0.01)])["data"] for r in radii], ignore_index=True)
        return {"sweep": sweep, "setting": {"architecture": arch}, "seed": 0, "data": frame}

    found = ladder_runs([result("paper", "wrn-10-1", [EIGHT, 0.1, 0.2]),
                         result("ladder", "wrn-10-1", [EIGHT, 12 / 255, 16 / 255, 0.1, 0.2]),
                         result("cnn", "small-cnn", [EIGHT, 0.05, 0.1, 0.15, 0.2, 0.3])])  # fmt: skip
    assert [r["sweep"] for r in found] == ["ladder"] and ladder_runs([]) == []


def test_one_seed_gives_intervals_over_its_inputs_and_says_so():
    rows = [("clean", EIGHT, 0.98, 2, 0.01), ("adversarial", EIGHT, 0.05, 3, 0.9),
            ("adversarial", 0.1, 0.9, 4, 0.02)]  # fmt: skip
    table = ladder_table([run(0, rows)]).set_index(["model", "radius"])
    reached = table.loc[("adversarial", 0.1)]
    assert reached["interval over"] == "inputs of one seed" and reached.collapses == "reproduced"
    assert reached["collapse lo"] < reached["final/peak"] < reached["collapse hi"]
    assert ladder_finding(table.reset_index()).startswith("From one seed so far")


def _check(rows, seeds=3):
    from flatrob.evidence.ladder import ladder_check

    runs = []
    for s in range(seeds):
        r = run(s, rows)
        r.update(
            sweep="ladder",
            setting={"architecture": "wrn-10-1", "epochs": 10, "attack_steps": 20},
            run={"job": f"seed-{s}", "seed": s, "commit": "abc", "device": "cpu", "machine": "x"},
        )
        runs.append(r)
    return ladder_check(ladder_table(runs), runs)


def test_claim_7_forms_later_where_the_adversarially_trained_attack_has_not_reached_the_regime():
    from flatrob.evidence.claims import at_paper_setting

    later = _check([("clean", EIGHT, 0.98, 2, 0.01), ("adversarial", EIGHT, 0.05, 3, 0.9),
                    ("adversarial", 0.1, 0.9, 4, 0.02)])  # fmt: skip
    assert later.verdict == "reproduced" and later.claim == 7 and later.part == "forms"
    assert later.measure["count"] == int(later.measure["n"] * later.measure["value"] + 0.5)
    assert later.measure["ci95"][1] < 0.25 and "forms at 0.1" in later.evidence
    assert later.setting["seeds"] == [0, 1, 2] and later.provenance["source"] == "sweep ladder"
    assert at_paper_setting(7, later.setting)  # the ladder is claim 7's setting on a network of the paper's kind
    # where most adversarially trained inputs flip too, the steps decide: later by whole steps, or not
    steps_later = _check([("clean", EIGHT, 0.98, 2, 0.01), ("adversarial", EIGHT, 0.95, 8, 0.02)])
    assert steps_later.verdict == "reproduced" and "the steps decide" in steps_later.evidence
    assert steps_later.values["half_flip_later"]["ci95"][0] > 0
    same = _check([("clean", EIGHT, 0.98, 5, 0.01), ("adversarial", EIGHT, 0.95, 2, 0.02)])
    assert same.verdict == "not reproduced"  # the adversarially trained inputs flip earlier: no shift
    between = _check([("clean", EIGHT, 0.98, 2, 0.01), ("adversarial", EIGHT, 0.37, 3, 0.02)])
    assert between.verdict == "partly"
    none = _check([("clean", EIGHT, 0.1, 2, 0.01), ("adversarial", EIGHT, 0.05, 3, 0.02)])
    assert none.verdict == "not reached in this regime"  # no clean valley, nothing to shift
