"""The paper's claims as executable checks: one function per claim, each taking a chapter's evidence and the
setting that made it (a dict, :data:`flatrob.evidence.verdicts.Setting`) and returning
:class:`~flatrob.evidence.verdicts.Check` results.

The machinery (estimates, intervals, rules, fragility, seeds) is :mod:`flatrob.evidence.verdicts`; what is
claim-specific is here: every threshold is a constant below, fixed before the data were seen, with its reason, and
every check carries the paper's number (``paper``) beside ours. A check whose data contradict the claim says so; it
does not raise, so a re-run with other parameters still builds and reports what it found.

Times that are censored (an input that never flips within the attack's steps, a walk whose loss never rises) are
never summarised by a median that the cap decides: the checks use restricted means (every time capped at the
last step + 1, the area under the survival curve) and paired shares, and count the censored inputs.

The thresholds and rules are :mod:`flatrob.evidence.checks.rules`; the checks, one module per group of chapters:
:mod:`~flatrob.evidence.checks.theory` (claims 1-5, 10 on a known manifold), :mod:`~flatrob.evidence.checks.valley`
(6, 7, 12), :mod:`~flatrob.evidence.checks.scale` (8, 9) and :mod:`~flatrob.evidence.checks.confidence` (10, 11). This
package's face names them all.
"""

from __future__ import annotations

from flatrob.evidence.checks.confidence import (
    check_confidence_band,
    check_confidently_wrong_flat,
    check_detector,
)
from flatrob.evidence.checks.rules import (
    ATTACK_SLACK,
    BASIN_FACTOR,
    BEATS_CONFIDENCE,
    COLLAPSE_FACTOR,
    COLLAPSES,
    CONFIDENT,
    CONFIDENT_AT_END,
    CONSTRUCTION_TOLERANCE,
    DETECTS,
    DOMINANCE,
    FALLS,
    FINAL_CONFIDENCE,
    FLOAT64_AGREEMENT,
    LARGER,
    LATER,
    MAJORITY,
    MASKING_GAIN,
    MASKS,
    MIN_POINTS,
    MONOTONE,
    MONOTONE_SHARE,
    MOSTLY,
    NORM_CONSTANT_RATIO,
    NORM_MOVES,
    PEAK_FRACTION,
    REACHES,
    RISE_FACTOR,
    RISES,
    STILL_FOOLS,
    TAIL_QUANTILE,
    WIDENS,
    too_few,
)
from flatrob.evidence.checks.scale import (
    check_gradient_masking,
    check_loss_growth,
    check_paired_loss_growth,
    check_scaling,
    check_scaling_median,
    recorded_log_increase,
)
from flatrob.evidence.checks.theory import (
    check_bridging,
    check_closed_form,
    check_local_bound,
    check_loss_change_flip,
    check_not_global,
)
from flatrob.evidence.checks.valley import (
    check_adversarial_training_shift,
    check_basin,
    check_clean_trace,
    check_feature_norm,
    check_valley_shape,
)

__all__ = [
    "ATTACK_SLACK",
    "BASIN_FACTOR",
    "BEATS_CONFIDENCE",
    "COLLAPSES",
    "COLLAPSE_FACTOR",
    "CONFIDENT",
    "CONFIDENT_AT_END",
    "CONSTRUCTION_TOLERANCE",
    "DETECTS",
    "DOMINANCE",
    "FALLS",
    "FINAL_CONFIDENCE",
    "FLOAT64_AGREEMENT",
    "LARGER",
    "LATER",
    "MAJORITY",
    "MASKING_GAIN",
    "MASKS",
    "MIN_POINTS",
    "MONOTONE",
    "MONOTONE_SHARE",
    "MOSTLY",
    "NORM_CONSTANT_RATIO",
    "NORM_MOVES",
    "PEAK_FRACTION",
    "REACHES",
    "RISES",
    "RISE_FACTOR",
    "STILL_FOOLS",
    "TAIL_QUANTILE",
    "WIDENS",
    "check_adversarial_training_shift",
    "check_basin",
    "check_bridging",
    "check_clean_trace",
    "check_closed_form",
    "check_confidence_band",
    "check_confidently_wrong_flat",
    "check_detector",
    "check_feature_norm",
    "check_gradient_masking",
    "check_local_bound",
    "check_loss_change_flip",
    "check_loss_growth",
    "check_paired_loss_growth",
    "check_not_global",
    "check_scaling",
    "check_scaling_median",
    "check_valley_shape",
    "recorded_log_increase",
    "too_few",
]
