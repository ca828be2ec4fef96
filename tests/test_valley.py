"""The valley-conditions study's tables: which single axis changes the verdict, and the medians on either side of
the collapse threshold."""

import numpy as np
import pandas as pd
import torch

from flatrob.attacks import STAT_NAMES, Trajectory
from flatrob.valley import axis_effects, median_sides, per_input, valley_samples
from flatrob.zoo import architecture_traits


def _settings(seeds: int) -> pd.DataFrame:
    rows = [("wrn-10-1", 0.008, "reproduced"), ("wrn-10-1-nobn", 0.14, "partly"),
            ("wrn-10-1-plain", 0.0077, "reproduced"), ("wrn-10-1-plain-nobn", 0.17, "partly"),
            ("small-cnn", 0.30, "partly")]  # fmt: skip
    return pd.DataFrame(
        [
            {
                "setting": f"{a}, 10 epochs",
                "architecture": a,
                "epochs": 10,
                **architecture_traits(a),
                "final/peak": fp,
                "verdict": v,
                "seeds": seeds,
            }
            for a, fp, v in rows
        ]  # fmt: skip
    )


def test_axis_effects_pairs_settings_that_differ_in_one_axis():
    effects = axis_effects(_settings(3))
    # four residual-family networks: batch norm pairs (2) and residual pairs (2); the small CNN has no traits
    assert sorted(effects.axis) == ["batch norm", "batch norm", "residual", "residual"]
    bn = effects[effects.axis == "batch norm"]
    assert bn["verdict changes"].all() and all(v == "partly -> reproduced" for v in bn.verdict)
    assert not effects[effects.axis == "residual"]["verdict changes"].any()
    assert all("(batch norm: false)" in f for f in bn["from"]) and all("(batch norm: true)" in t for t in bn["to"])


def test_median_sides_lists_both_sides_with_traits_and_says_when_seeds_are_too_few():
    text = median_sides(_settings(2), 0.1)
    below, above = text.split("stays above")
    assert "wrn-10-1, 10 epochs (0.008, batch norm, residual)" in below
    assert "wrn-10-1-plain, 10 epochs (0.0077, batch norm)" in below and "nobn" not in below
    assert "small-cnn, 10 epochs (0.3, neither batch norm nor residual connections)" in above
    assert "1 degree(s) of freedom" in text and "not a verdict" in text
    assert "degree" not in median_sides(_settings(3), 0.1)
    assert "for no setting" in median_sides(_settings(3), 1e-3) and median_sides(_settings(3).iloc[:0], 0.1) == ""


def test_networks_outside_the_family_pair_only_with_themselves():
    """The small CNN and the transformer have no traits: each pairs with itself on training length, never with the
    other (they differ in far more than epochs)."""
    rows = [("small-cnn", 10), ("small-cnn", 2), ("vit", 10)]
    table = pd.DataFrame(
        [
            {"setting": f"{a}, {e} epochs", "architecture": a, "epochs": e, "final/peak": 0.3, "verdict": "partly"}
            for a, e in rows
        ]  # fmt: skip
    )
    effects = axis_effects(table)
    assert list(effects.axis) == ["epochs"] and "small-cnn" in effects["from"][0] and "small-cnn" in effects["to"][0]


def test_per_input_keeps_each_correct_input_with_its_own_valley():
    t, n = 6, 5
    kappa = torch.tensor([0.1, 1, 10, 1, 1e-3, 1e-4], dtype=torch.float64)[:, None].repeat(1, n)
    kappa[:, 1] *= 3  # the second input's path, scaled: the same ratios
    kappa[-1, 2] = 10.0  # the third input does not collapse
    stats = {name: torch.ones(t, n, dtype=torch.float64) for name in STAT_NAMES}
    stats |= {"kappa_layer": kappa, "trace": kappa / 10, "feature_norm": torch.full((t, n), 2.0, dtype=torch.float64)}
    pred = torch.tensor([0, 0, 1, 1, 1, 1])[:, None].repeat(1, n)
    pred[:, 3] = 0  # never flips
    pred[:, 4] = 1  # starts wrong
    s = valley_samples(
        Trajectory(torch.zeros(n, dtype=torch.long), torch.zeros(t, n, 3), pred, stats, torch.zeros(n, 1))
    )
    table = per_input({(0.1, "clean"): s, (0.2, "clean"): s})
    assert len(table) == 8 and set(table.radius) == {0.1, 0.2}  # the four inputs that start correct, per radius
    one = table[table.radius == 0.1].set_index("input")
    assert one.index.tolist() == [0, 1, 2, 3]
    assert one.flipped.tolist() == [True, True, True, False] and one.time_to_flip.tolist() == [2, 2, 2, 6]
    assert np.allclose(one.final_over_peak[[0, 1]], 1e-5) and one.final_over_peak[2] == 1.0
    assert np.isnan(one.final_over_peak[3]) and np.isnan(one.peak_over_start[3])
