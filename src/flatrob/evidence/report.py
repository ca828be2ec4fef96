"""The reproduction report's tables: what holds where, at a glance, from the ledger's verdicts per setting.

:func:`grid` places every empirical claim against five kinds of evidence (the paper's setting or larger radii; one
run or a sweep over seeds; committed larger runs), each cell a verdict with the decisive value and its interval;
:func:`headline` gives each claim's verdict at the paper's setting beside the paper's number; :func:`mathematical`
lists the identities and bounds apart, since they hold or fail as mathematics, not as evidence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from flatrob.evidence.claims import IN_WORDS, ROWS, at_paper_setting
from flatrob.evidence.ledger import setting_group, source_kind, strongest_groups
from flatrob.evidence.records import ClaimRecord, Comparison, LedgerEntry, SettingGroup, mapping, number, sequence
from flatrob.evidence.verdicts import EVIDENCE_VERDICTS, NOT_REACHED, combine, combine_settings, counted_settings
from flatrob.util.provenance import interval_text

__all__ = [
    "CATEGORIES",
    "HEADLINE_PART",
    "category",
    "checks_frame",
    "comparison_line",
    "differences",
    "markdown_math",
    "grid",
    "headline",
    "mathematical",
    "rows",
    "scale_caveat",
]

#: The kinds of evidence the grid's columns show, strongest last. "The paper's setting" is the whole setting
#: (:func:`flatrob.evidence.claims.at_paper_setting`): the paper's attack on a network of its kind trained on real
#: images.
CATEGORIES = (
    "paper's setting, one run",
    "paper's setting, over seeds",
    "further settings, one run",
    "further settings, over seeds",
    "studies beyond the paper, over seeds",
    "committed larger runs",
)
#: The check whose value a claim's cell shows (the claim's centre): the collapse of the valley, the widening of the
#: basin, the fall of the median sharpness, PGD's gain under scaling, the flatness of confidently wrong points.
HEADLINE_PART = {
    6: ("collapse",),
    7: ("forms", "basin", "shift"),
    8: ("median", "loss-growth"),
    9: ("masking",),
    10: ("attack", "manifold"),
    11: ("",),
    12: ("",),
}


def paper_link(claim: int, text: str, prefix: str = "") -> str:
    """The paper's value of a claim, linked to where the book says where it comes from ("The paper, as we read it";
    ``prefix`` reaches it from the page's folder, "../" from a chapter's). In HTML a link; LaTeX keeps the text."""
    return f'<a href="{prefix}paper.html#claim-{claim}">{text}</a>' if text else ""


def category(claim: int, setting: Mapping[str, object]) -> str:
    """The grid's column of a check: the paper's setting or not, one run, over seeds, or a committed run."""
    kind = source_kind(setting)
    if kind == "run":
        return CATEGORIES[5]
    if kind == "study":
        return CATEGORIES[4]
    where = "paper's setting" if at_paper_setting(claim, setting) else "further settings"
    return f"{where}, {'over seeds' if kind == 'sweep' else 'one run'}"


def _fmt(x: Any) -> str:
    return "" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.3g}"


def _value(entry: LedgerEntry) -> str:
    """The decisive measure's value with its interval, and where the measure cannot show more than some value (a
    capped walk: its ``largest measurable`` limit, the smallest over the seeds), that bound: ``2.33 [2.04, 2.65]
    (at most 3.47 measurable here)``."""
    m = entry.get("measure")
    if not m or m.get("value") is None:
        return ""
    ci = m.get("ci95")
    text = interval_text(m["value"], ci[0], ci[1], _fmt) if ci and ci[0] is not None else _fmt(m["value"])
    limits = mapping((entry.get("values") or {}).get("limits") or {})
    per_seed = (
        [mapping(v) for v in limits.values()] if all(isinstance(v, Mapping) for v in limits.values()) else [limits]
    )
    bounds = [number(v) for lim in per_seed for k, v in lim.items() if k.startswith("largest measurable")]
    return text + (f" (at most {_fmt(min(bounds))} measurable here)" if bounds else "")


def _in_words(entry: LedgerEntry) -> str:
    """The entry's decisive measure in words (:data:`IN_WORDS`; "" for a measure without words or a value)."""
    m = entry.get("measure")
    if not m or m.get("value") is None or m.get("name") not in IN_WORDS:
        return ""
    v = float(m["value"])
    return IN_WORDS[str(m["name"])](v) if math.isfinite(v) else ""


def _measure_name(entry: LedgerEntry) -> str:
    """The name of an entry's decisive measure ("" without one)."""
    m = entry.get("measure")
    return str(m["name"]) if m else ""


def _main(claim: int, entries: Sequence[LedgerEntry]) -> LedgerEntry | None:
    for part in HEADLINE_PART.get(claim, ("",)):
        hit = [e for e in entries if e.get("part", "") == part and e.get("measure")]
        if hit:
            return hit[0]
    return next((e for e in entries if e.get("measure")), None)


def _rows(claim: ClaimRecord) -> dict[str, list[LedgerEntry]]:
    """The claim's checks by row: split by training (clean, adversarially trained) where it has both."""
    trainings = {e["setting"].get("training") for e in claim["checks"]}
    split = {"clean", "adversarial"} <= trainings
    out: dict[str, list[LedgerEntry]] = {}
    for e in claim["checks"]:
        t = e["setting"].get("training")
        label = (
            f"{claim['claim']} · {'AT' if t == 'adversarial' else t}"
            if split and t in ("clean", "adversarial")
            else f"{claim['claim']}"
        )
        out.setdefault(label, []).append(e)
    return out


def grid(claims: Sequence[ClaimRecord]) -> pd.DataFrame:
    """One row per (claim row, kind of evidence) of the empirical claims: the combined verdict, the decisive value
    with its interval (of the claim's centre, :data:`HEADLINE_PART`), fragility, and whether it is the paper's setting.
    """
    rows = []
    for claim in claims:
        if claim["kind"] != "empirical":
            continue
        for label, entries in _rows(claim).items():
            by_cat: dict[str, list[LedgerEntry]] = {}
            for e in entries:
                by_cat.setdefault(category(claim["claim"], e["setting"]), []).append(e)
            for cat in CATEGORIES:
                found = by_cat.get(cat, [])
                if not found:
                    continue
                main = _main(claim["claim"], found)
                verdict = combine([e["verdict"] for e in found])
                fragile = any(e.get("fragile") for e in found)
                text = verdict + (" (fragile)" if fragile else "") + (f"\n{_value(main)}" if main else "")
                rows.append(
                    {
                        "claim": label,
                        "setting": cat,
                        "verdict": verdict,
                        "text": text,
                        "fragile": fragile,
                        "paper_setting": cat.startswith("paper") or cat == CATEGORIES[5],
                        "checks": len(found),
                    }
                )
    return pd.DataFrame(rows)


def _setting_entries(claim: ClaimRecord, groups: Sequence[SettingGroup]) -> list[LedgerEntry]:
    ids = {i for g in groups for i in g["checks"]}
    return [e for e in claim["checks"] if e["id"] in ids]


def _cell(claim: ClaimRecord, groups: Sequence[SettingGroup], where: bool = True) -> str:
    """A verdict with its decisive measure, named, and where it comes from: ``reproduced (fragile) · median
    final/peak 0.0077 [..] · wrn-10-1, 10 epochs, seeds 0, 1, 2`` (without the last part unless ``where``)."""
    if not groups:
        return "not tested yet"
    entries = _setting_entries(claim, groups)
    verdict = combine_settings([g["verdict"] for g in groups])
    counted = counted_settings([g["verdict"] for g in groups])
    fragile = any(g["fragile"] for g, n in zip(groups, counted, strict=True) if n)
    deciding = [e for e in entries if e["verdict"] == verdict]  # the checks that made the verdict, if any
    centre = _main(claim["claim"], entries)  # the claim's centre (HEADLINE_PART), whether or not it decided
    main = _main(claim["claim"], deciding) or centre
    shown = main or (entries[0] if entries else None)
    s = shown["setting"] if shown else {}  # where the value shown comes from
    seeds = s.get("seeds")
    origin = f"{s.get('architecture', '?')}" + (f", {s['epochs']} epochs" if s.get("epochs") else "")
    origin += f", seeds {', '.join(map(str, sequence(seeds)))}" if seeds else ", one run"
    value = ""
    if main and _value(main):
        words, value = _in_words(main), f"{_measure_name(main)} {_value(main)}"
        value = f"{words} ({value})" if words else value
    if centre is not None and main is not None and centre is not main and centre.get("part") != main.get("part"):
        value += f"; {_measure_name(centre)} {_value(centre)} ({centre['verdict']})" if _value(centre) else ""
    return " · ".join(b for b in (verdict + (" (fragile)" if fragile else ""), value, origin if where else "") if b)


def _reached_elsewhere(claim: ClaimRecord, candidates: Sequence[SettingGroup]) -> str:
    """For a headline row whose attack does not reach the claim's regime at the paper's setting: the smallest radius
    at which the same network's attack does reach it (a further setting of the strongest evidence, e.g. the budget
    ladder), with its verdict and decisive value; "" if none does. A radius where the claim's centre
    (:data:`HEADLINE_PART`, the collapse for claim 6) is itself measured comes before one where only other parts are."""
    from flatrob.util.provenance import short_value
    from flatrob.zoo import PAPER_KIND

    reached = [
        g
        for g in candidates
        if not g["paper_setting"]
        and g["verdict"] in EVIDENCE_VERDICTS
        and g["setting"].get("architecture") in PAPER_KIND
        and g["setting"].get("eps") is not None
    ]
    if not reached:
        return ""
    centre = HEADLINE_PART.get(claim["claim"], ())
    at_centre = [  # where the claim's centre itself is measured (the collapse, not only the rise before it)
        g
        for g in reached
        if any(e.get("part") in centre and e["verdict"] in EVIDENCE_VERDICTS for e in _setting_entries(claim, [g]))
    ]
    strongest = strongest_groups(at_centre or reached)
    g = min(strongest, key=lambda g: (number(g["setting"]["eps"]), g["label"]))
    entry = _setting_entries(claim, [g])[0]["setting"]
    attack = f"{short_value(number(g['setting']['eps']))}" + (f", {entry['steps']} steps" if entry.get("steps") else "")
    return f"; reached at {attack} ({entry.get('source', 'live')}): {_cell(claim, [g], where=False)}"


def _of_training(setting: SettingGroup, training: str | None, split: bool) -> bool:
    """Whether a group of settings belongs to a headline row: all of them when the claim is not split by training;
    else those of that training (None: those of neither the clean nor the adversarially trained model)."""
    got = setting["setting"].get("training")
    if not split:
        return True
    return got not in ("clean", "adversarial") if training is None else got == training


def headline(claims: Sequence[ClaimRecord]) -> pd.DataFrame:
    """Each empirical claim at the paper's setting (the paper's attack on a network of the paper's kind trained on
    real images, :func:`flatrob.evidence.claims.at_paper_setting`), from the strongest evidence there, beside the same
    attack on the book's small CNN (one further setting) and the paper's number. A claim checked on both a clean and
    an adversarially trained model has a row for each (as in the grid). Where the paper's setting gives no evidence,
    the cell says why and names the best further setting."""
    rows = []
    for claim in claims:
        if claim["kind"] != "empirical":
            continue
        trainings = {s["setting"].get("training") for s in claim["settings"]}
        split = {"clean", "adversarial"} <= trainings
        for training in ("clean", "adversarial", None) if split else (None,):
            candidates = [s for s in claim["settings"] if s["strength"] > 0 and _of_training(s, training, split)]
            paper = [s for s in candidates if s["paper_setting"]]
            small = [s for s in candidates if s["paper_attack"] and s["setting"].get("architecture") == "small-cnn"]
            if split and training is None and not paper and not small:
                continue
            head = strongest_groups(paper)
            if head:
                ours = _cell(claim, head)
                verdict = combine_settings([g["verdict"] for g in head])
                if verdict == NOT_REACHED:
                    ours += _reached_elsewhere(claim, candidates)
                elif verdict not in EVIDENCE_VERDICTS and (further := claim["further"]):
                    ours += f"; best further setting: {further['label']}: {further['verdict']}"
            else:
                ours = "not tested yet at the paper's setting"
            label = {"clean": " · clean", "adversarial": " · AT"}.get(training or "", "")
            rows.append(
                {
                    "claim": f"{claim['claim']}{label}",
                    "statement": claim["statement"],
                    "paper": paper_link(claim["claim"], claim["paper"]),
                    "at the paper's setting": ours,
                    "small CNN, the paper's attack": _cell(claim, strongest_groups(small)) if small else "not tested",
                }
            )
    return pd.DataFrame(rows)


def differences(claims: Sequence[ClaimRecord]) -> str:
    """What still differs from the paper at the settings that make the headlines, in words computed from them: the
    data, the networks, the training (epochs, the steps of adversarial training), seeds and inputs."""
    entries = [
        e
        for c in claims
        if c["kind"] == "empirical"
        for e in _setting_entries(
            c, strongest_groups([s for s in c["settings"] if s["paper_setting"] and s["strength"] > 0])
        )
    ]
    if not entries:
        return "Nothing is checked at the paper's setting yet: every verdict below comes from further settings."
    params: dict[str, set[str]] = {}
    for e in entries:
        found = {**e.get("provenance", {}).get("params", {}), **e["setting"]}
        for key in ("data", "dataset", "architecture", "epochs", "n_train", "adv_steps", "adv_step_size", "inputs"):
            if found.get(key) is not None:
                params.setdefault(key, set()).add(str(found[key]))
        if e["setting"].get("seeds"):
            params.setdefault("seeds", set()).add(str(len(sequence(e["setting"]["seeds"]))))

    def one(key: str) -> str:
        return ", ".join(sorted(params.get(key, {"?"})))

    steps = params.get("adv_steps")
    return (
        "**What still differs from the paper.** The verdicts at the paper's setting use its attacks and radii on "
        f"networks of its kind, but on {one('data')} (the paper: CIFAR-10/100), with {one('architecture')} (the "
        f"paper: ResNet-18, WideResNet-28-4, DenseNet-121, VGG-11-BN), trained {one('epochs')} epochs on the CPU "
        "(the paper: 100 epochs with a cosine schedule, random crops and flips, on a GPU)"
        + (
            f", adversarially with {', '.join(sorted(steps))} PGD steps per batch (the paper: 10 steps of 2/255)"
            if steps
            else ""
        )
        + f"; {one('seeds')} training seeds and {one('inputs')} test inputs per seed (the paper's number of seeds "
        "and inputs per experiment is not in what we could read of it; its curves average over test samples)."
    )


def mathematical(claims: Sequence[ClaimRecord]) -> pd.DataFrame:
    """The identities and bounds (claims 1-5): verdict and what was checked."""
    return pd.DataFrame(
        [
            {
                "claim": c["claim"],
                "statement": c["statement"],
                "verdict": c["verdict"],
                "checked": "; ".join(e["evidence"] for e in c["checks"])[:400],
            }
            for c in claims
            if c["kind"] == "mathematical"
        ]
    )


def checks_frame(claims: Sequence[ClaimRecord]) -> pd.DataFrame:
    """Every check as one row, for the long table and its CSV: claim, check, verdict, fragile, our value, the paper's,
    the setting's fields, chapter, device, commit."""
    rows = []
    for c in claims:
        for e in c["checks"]:
            prov = e.get("provenance", {})
            rows.append(
                {
                    "claim": c["claim"],
                    "check": e["id"],
                    "verdict": e["verdict"],
                    "fragile": bool(e.get("fragile")),
                    "ours": e["evidence"],
                    "paper": e["paper"],
                    "decisive value": _value(e),
                    **{f"setting: {k}": v for k, v in e["setting"].items()},
                    "chapter": e["chapter"],
                    "device": prov.get("device", ""),
                    "commit": str(prov.get("commit", ""))[:10],
                }
            )
    columns = ["claim", "check", "verdict", "fragile", "ours", "paper", "decisive value", "chapter", "device", "commit"]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=columns)


def scale_caveat(claims: Sequence[ClaimRecord]) -> str:
    """The first thing a reader must know: at which scale, on which hardware and how unlike the paper's the
    verdicts were made (:func:`differences`)."""
    entries = [e for c in claims for e in c["checks"]]
    devices = sorted({str(e.get("provenance", {}).get("device", "?")) for e in entries})
    return (
        "**Scale first.** "
        + differences(claims).replace("**What still differs from the paper.** ", "")
        + f" Devices: {', '.join(devices) or 'none yet'}. A verdict here says what holds in this setting, not that "
        "the paper's numbers are wrong or right at theirs."
    )


def rows(claims: Sequence[ClaimRecord]) -> pd.DataFrame:
    """The paper's experiments (rows A-F): each row's question, the paper's numbers, the chapter that re-runs it and
    its verdict, combined over that chapter's checks of the row's claim at the paper's setting (from the strongest
    evidence there)."""
    out = []
    for row, (question, claim_id, chapter, parts, paper) in ROWS.items():
        claim = next(c for c in claims if c["claim"] == claim_id)
        found = [
            e
            for e in claim["checks"]
            if e["chapter"] == chapter
            and (not parts or e.get("part") in parts)
            and at_paper_setting(claim_id, e["setting"])
            and _strength(e) > 0
        ]
        strongest = max((_strength(e) for e in found), default=0)
        found = [e for e in found if _strength(e) == strongest]
        by_setting: dict[tuple[tuple[str, object], ...], list[LedgerEntry]] = {}
        for e in found:  # each setting's parts combined, then the settings (a row outside the regime left out)
            by_setting.setdefault(setting_group(e["setting"]), []).append(e)
        each = [combine([e["verdict"] for e in group]) for group in by_setting.values()]
        verdict = combine_settings(each)
        fragile = any(
            e.get("fragile")
            for group, n in zip(by_setting.values(), counted_settings(each), strict=True)
            if n
            for e in group
        )
        out.append(
            {
                "row": row,
                "question": question,
                "paper": paper,
                "chapter": chapter,
                "verdict": (verdict + (" (fragile)" if fragile else "")) if found else "not tested yet",
            }
        )
    return pd.DataFrame(out)


def _strength(entry: LedgerEntry) -> int:
    return {"run": 3, "sweep": 2, "study": 0}.get(source_kind(entry["setting"]), 1)


def comparison_line(result: Comparison, has_build: bool) -> str:
    """The report's first line about this build: how many verdicts it reproduced, and its largest drift."""
    if not has_build:
        return (
            "**This build** wrote no ledger of its own, so it is not compared with the committed evidence (build "
            "with `make book`)."
        )
    if not any(r["committed"] != "(not committed)" for r in result["rows"]):
        return (
            "**This build** has no committed evidence to compare itself with: `data/claims/` holds none that this "
            "code can read (made by older code, or none yet); `make ledger` makes this build the reference."
        )
    agree, total = result["agree"], result["checks"]
    text = f"**This build** reproduced {agree} of {total} committed verdicts on this machine"
    drift = result["largest_drift"]
    if drift:
        text += f"; largest drift of a decisive value {100 * drift:.2g}% (`{result['largest_drift_check']}`)"
    elif drift == 0.0:
        text += "; every decisive value is identical"
    fragile = [r["check"] for r in result["rows"] if not r["agrees"] and r["fragile"]]
    firm = [r["check"] for r in result["rows"] if not r["agrees"] and not r["fragile"]]
    if fragile:
        text += f"; {len(fragile)} of the differing verdicts are fragile"
    if firm:
        text += f"; **{len(firm)} verdicts that are not fragile differ** ({', '.join(f'`{c}`' for c in firm[:3])})"
    return text + " ({ref}`build-vs-committed`)."


def markdown_math(text: str) -> str:
    """Text written for MathJax (``\\( ... \\)``, as the claims are) made safe for a Markdown cell's output, where
    ``\\(`` is an escaped parenthesis: ``$ ... $``."""
    return text.replace("\\(", "$").replace("\\)", "$")
