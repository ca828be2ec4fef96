"""The valley-conditions study as effect sizes (each axis's factor on the collapse depth, with its interval over
seeds) and as a mechanism (the collapse depth against the final confidence, predicted for settings held out)."""

import numpy as np
import pandas as pd

from flatrob.evidence.study import (
    effect_sizes,
    effects_sentence,
    mechanism,
    mechanism_sentence,
    through_confidence,
    through_sentence,
)
from flatrob.zoo import architecture_traits


def runs(depth_of, seeds=3, noise=0.1, rng_seed=0):
    """One row per run; depth_of: architecture -> median final/peak (each seed multiplies it by lognormal noise)."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for arch, depth in depth_of.items():
        for seed in range(seeds):
            fp = depth * float(np.exp(rng.normal(0, noise)))
            rows.append(
                {
                    "setting": f"{arch}, 10 epochs",
                    "architecture": arch,
                    "epochs": 10,
                    "seed": seed,
                    "final/peak": fp,
                    "final confidence": 1 - 0.5 * fp**1.2,
                    **architecture_traits(arch),
                }
            )
    return pd.DataFrame(rows)


def test_an_axis_that_scales_every_seed_is_decided_and_one_that_does_not_is_not():
    table = effect_sizes(runs({"wrn-10-1": 0.01, "wrn-10-1-nobn": 0.1, "wrn-10-1-plain": 0.011}))
    bn = table[table.axis == "batch norm"].iloc[0]
    assert bn["from"].startswith("wrn-10-1-nobn") and bn["to"].startswith("wrn-10-1,")  # from without to with
    assert bn.decided and bn.lo < bn.factor < bn.hi < 1 and 0.05 < bn.factor < 0.2
    res = table[table.axis == "residual"].iloc[0]
    assert not res.decided and res.lo < 1 < res.hi
    text = effects_sentence(table)
    assert "Adding batch norm deepens it in 1 of 1 pairs, x0." in text
    assert "Adding residual connections changes it in none of its 1 pairs (every interval includes 1" in text


def test_the_mechanism_predicts_held_out_settings_or_says_it_does_not():
    depths = {"wrn-10-1": 0.01, "wrn-10-1-nobn": 0.1, "wrn-10-1-plain": 0.02, "wrn-10-1-plain-nobn": 0.3,
              "wrn-16-1": 0.001}  # fmt: skip
    fit = mechanism(runs(depths))
    assert 0.7 < fit["slope"] < 0.95 and fit["held-out rmse"] < fit["null rmse"] / 3 and fit["settings"] == 5
    assert "predicts how deep the collapse is" in mechanism_sentence(fit)
    shuffled = runs(depths)
    shuffled["final confidence"] = np.random.default_rng(1).permutation(shuffled["final confidence"].to_numpy())
    blind = mechanism(shuffled)
    assert blind["held-out rmse"] > blind["null rmse"] * 0.8 and "does not predict" in mechanism_sentence(blind)
    assert mechanism(runs({"wrn-10-1": 0.01, "wrn-10-1-nobn": 0.1})) == {}  # two settings: nothing to hold out


def test_an_axis_that_acts_through_the_final_confidence_is_carried_by_it_and_one_that_does_not_is_not():
    depths = {"wrn-10-1": 0.01, "wrn-10-1-nobn": 0.1, "wrn-10-1-plain": 0.02, "wrn-10-1-plain-nobn": 0.3}
    points = runs(depths, noise=0.01)  # the confidence follows the depth (1 - conf = 0.5 depth^1.2)
    table = through_confidence(effect_sizes(points), points, mechanism(points))
    bn = table[table.axis == "batch norm"]
    assert len(bn) == 2 and np.allclose(np.log(bn["through confidence"]) / np.log(bn["observed"]), 1, atol=0.05)
    assert "adding batch norm: 100% (2 pairs)" in through_sentence(table)
    assert "Every axis acts on the collapse through how confident the model ends the attack" in through_sentence(table)
    flat = points.assign(**{"final confidence": 0.9})  # the depth moves, the confidence does not
    carried = through_confidence(effect_sizes(flat), flat, mechanism(points))
    assert np.allclose(carried["through confidence"], 1) and "adding batch norm: 0% (2 pairs)" in through_sentence(
        carried
    )
    assert through_confidence(effect_sizes(points), points, {}).empty
