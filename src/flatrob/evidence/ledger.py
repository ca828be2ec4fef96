"""The claims ledger: the paper's twelve claims, the checks the chapters computed for them, verdicts per setting.

Two ledgers, never mixed up:

* **the committed evidence** (``data/claims/<chapter>.json``, merged into ``data/claims.json``): the reference.
  Only :func:`flatrob.evidence.compare.update` (``python -m flatrob ledger --update``, ``make ledger``) writes it,
  from a build, and only from a clean tree at the commit that made every entry;
* **this build's ledger** (``_build/ledger/<chapter>.json``): what the chapters computed on this machine when the
  book was built with ``make book`` (``FLATROB_LEDGER=1``; :func:`record`). A build never rewrites tracked files.

:func:`build` merges one ledger into one entry per claim, with a verdict per setting (data, model, training, attack,
source of the evidence), the paper's setting first. :mod:`flatrob.evidence.compare` sets the two ledgers side by side
and makes a build the committed evidence.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from flatrob.evidence.claims import CLAIMS, at_paper_attack, at_paper_setting
from flatrob.evidence.records import (
    LEDGER_FORMAT,
    ClaimRecord,
    Further,
    LedgerEntry,
    LedgerFile,
    SettingGroup,
    number,
    sequence,
    texts,
)
from flatrob.evidence.verdicts import (
    EVIDENCE_VERDICTS,
    VERDICTS,
    Check,
    combine,
    combine_settings,
    counted_settings,
)
from flatrob.util.io import atomic_write_text, json_text, strict_json
from flatrob.util.paths import build_ledger_dir
from flatrob.util.provenance import short_value

__all__ = [
    "LEDGER_ENV",
    "LEDGER_FORMAT",
    "NOT_TESTED",
    "build",
    "entry",
    "load",
    "record",
    "setting_group",
    "setting_label",
    "strongest_groups",
]

#: Set FLATROB_LEDGER=1 (``make book`` does) to let the chapters write their entries to this build's ledger.
LEDGER_ENV = "FLATROB_LEDGER"
#: The verdict of a claim no chapter has checked.
NOT_TESTED = "not tested yet"


#: Provenance fields that change on every run without changing a result: ignored when deciding to rewrite.
_VOLATILE = ("commit", "judged_at", "time_utc", "duration_s")
#: Setting fields that tell settings apart in the report (the others, steps or inputs, describe one).
_GROUP_KEYS = ("data", "architecture", "epochs", "training", "norm", "eps", "variant", "source")
#: How strong a source of evidence is: a committed larger run beats a sweep over seeds beats one live run; a study
#: beyond the paper's settings (other models, budgets) never decides a claim's headline.
_STRENGTH = {"run": 3, "sweep": 2, "live": 1, "study": 0}


# ---------------------------------------------------------------------------
# entries


def entry(check: Check, chapter: str, provenance: Mapping[str, object]) -> LedgerEntry:
    """The ledger entry of one check: the check itself (:meth:`Check.as_dict`: id, claim, part, statement, verdict,
    fragile, evidence, the paper's number, setting, values, decisive measure), the chapter that shows it and the
    provenance of the run that made it: a committed sweep's or run's (``check.provenance``, with ``judged_at``, the
    commit whose rules judged it again), or this run's (``provenance``)."""
    if check.claim not in CLAIMS:
        raise ValueError(f"claim must be one of {sorted(CLAIMS)}; got {check.claim}")
    if check.verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}; got {check.verdict!r}")
    made_by = dict(check.provenance, judged_at=provenance.get("commit")) if check.provenance else dict(provenance)
    doc = {**check.as_dict(), "paper": check.paper or CLAIMS[check.claim]["paper"], "chapter": chapter}
    return cast(LedgerEntry, doc | {"provenance": made_by})


def _stable(doc: Mapping[str, object]) -> Any:
    """A ledger file as JSON holds it, without the fields that change on every run (commit, time, duration)."""
    plain = strict_json(doc)
    plain.pop("duration_s", None)
    for e in plain.get("entries", []):
        for key in _VOLATILE:
            e.get("provenance", {}).pop(key, None)
    return plain


def record(
    chapter: str,
    entries: Sequence[Mapping[str, object]],
    *,
    duration_s: float | None = None,
    root: Path | None = None,
    force: bool = False,
) -> Path | None:
    """Write a chapter's entries to this build's ledger, ``_build/ledger/<chapter>.json``, when FLATROB_LEDGER=1
    (or ``force``). Test runs with small parameters leave it alone; the file is rewritten only when a verdict, a
    value or a setting changed. Returns the path written, or None."""
    if not force and os.environ.get(LEDGER_ENV) != "1":
        return None
    path = build_ledger_dir(root) / f"{chapter}.json"
    doc = strict_json({"format": LEDGER_FORMAT, "chapter": chapter, "duration_s": duration_s, "entries": list(entries)})
    if path.exists():
        try:
            if _stable(json.loads(path.read_text())) == _stable(doc):
                return None
        except json.JSONDecodeError:
            pass  # an unreadable file is replaced
    return atomic_write_text(path, json_text(doc))


def load(folder: Path) -> dict[str, LedgerFile]:
    """The ledger files of a folder (this build's or the committed one), by chapter: {chapter: {"format",
    "chapter", "duration_s", "entries"}}. Files of another :data:`LEDGER_FORMAT` (made by older code) are not read:
    a build compares itself only with evidence it can read as it was meant."""
    out: dict[str, LedgerFile] = {}
    for f in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        doc = json.loads(f.read_text())
        if isinstance(doc, dict) and doc.get("format") == LEDGER_FORMAT:
            out[doc["chapter"]] = cast(LedgerFile, doc)
    return out


def _entries(ledger: Mapping[str, LedgerFile]) -> list[LedgerEntry]:
    return [cast(LedgerEntry, dict(e)) for doc in ledger.values() for e in doc["entries"]]


# ---------------------------------------------------------------------------
# settings


def source_kind(setting: Mapping[str, object]) -> str:
    """ "live" (a chapter's own run in this build), "sweep" (a committed sweep over seeds), "study" (a committed sweep
    beyond the paper's settings) or "run" (a committed larger run)."""
    return str(setting.get("source", "live")).split(" ")[0]


def setting_group(setting: Mapping[str, object]) -> tuple[tuple[str, object], ...]:
    """The fields that tell a setting apart from the claim's other settings (:data:`_GROUP_KEYS`)."""
    return tuple((k, setting[k]) for k in _GROUP_KEYS if setting.get(k) is not None)


def setting_label(setting: Mapping[str, object]) -> str:
    """A setting in words, complete enough that two settings never share a label: ``PGD-linf 8/255, 10 steps, 40 steps
    of 0.003922, clean, small-cnn (4 epochs), fashion-mnist; sweep X (seeds 0, 1, 2)`` (attack and its steps, the
    variant, training, model, data, source and seeds)."""
    bits = []
    if setting.get("norm"):
        eps = number(setting["eps"])
        radius = short_value(eps)
        steps = f", {setting['steps']} steps" if setting.get("steps") else ""
        bits.append(f"PGD-{setting['norm']} {radius}{steps}")
    for key in ("variant", "ladder", "definition"):
        if setting.get(key):
            bits.append(str(setting[key]))
    if setting.get("training"):
        bits.append(str(setting["training"]))
    if setting.get("architecture"):
        bits.append(f"{setting['architecture']}" + (f" ({setting['epochs']} epochs)" if setting.get("epochs") else ""))
    if setting.get("data"):
        bits.append(str(setting["data"]))
    shown = {"norm", "eps", "steps", "variant", "ladder", "definition", "training", "architecture", "epochs", "data"}
    bits += [
        f"{k} {setting.get(k)}" for k in texts(setting.get("varied", [])) if k not in shown
    ]  # a sweep's other axes
    text = ", ".join(bits) or "no attack"
    source = str(setting.get("source", "live"))
    if source != "live":
        seeds = setting.get("seeds")
        text += f"; {source}" + (f" (seeds {', '.join(map(str, sequence(seeds)))})" if seeds else "")
    return text


def build(ledger: Mapping[str, LedgerFile]) -> list[ClaimRecord]:
    """One entry per claim from a ledger ({chapter: file}, :func:`load`): its checks, its settings with a verdict
    each (the paper's settings first, then the others by strength of evidence and radius) and its headline verdict:
    the verdict at the paper's setting (:func:`at_paper_setting`) from the strongest evidence there (a committed
    larger run, else a sweep over seeds, else a live run). Where nothing at the paper's setting is evidence, the
    headline keeps the reason (not testable here, not reached in this regime, cannot decide here) and names the best
    further setting (``further``: its label and verdict). The settings combine by
    :func:`flatrob.evidence.verdicts.combine_settings`: a setting whose attack did not reach the claim's regime does
    not weaken those that did. A claim without a paper setting (the mathematical ones)
    combines all its checks."""
    by_claim: dict[int, list[LedgerEntry]] = {c: [] for c in CLAIMS}
    for e in _entries(ledger):
        by_claim[int(e["claim"])].append(e)
    out: list[ClaimRecord] = []
    for c, claim in CLAIMS.items():
        found = by_claim[c]
        settings = _setting_groups(c, found, bool(claim["paper_settings"]))
        paper = (
            [g for g in settings if g["paper_setting"] and g["strength"] > 0] if claim["paper_settings"] else settings
        )
        head = strongest_groups(paper)
        verdict = combine_settings([g["verdict"] for g in head]) if head else NOT_TESTED
        further: Further | None = None
        if claim["paper_settings"] and verdict not in EVIDENCE_VERDICTS:
            others = strongest_groups([g for g in settings if not g["paper_setting"] and g["strength"] > 0])
            if others:
                best = next((g for g in others if g["verdict"] in EVIDENCE_VERDICTS), others[0])
                further = {"label": best["label"], "verdict": best["verdict"]}  # a setting named by its own verdict
        out.append(
            {
                "claim": c,
                "statement": claim["statement"],
                "paper": claim["paper"],
                "kind": claim["kind"],
                "source": claim["source"],
                "paper_settings": claim["paper_settings"],
                "verdict": verdict,
                "fragile": any(
                    g["fragile"] for g, n in zip(head, counted_settings([g["verdict"] for g in head]), strict=True) if n
                ),
                "further": further,
                "settings": settings,
                "checks": found,
            }
        )
    return out


def _setting_groups(claim: int, found: Sequence[LedgerEntry], paper_settings: bool) -> list[SettingGroup]:
    """A claim's entries grouped by setting (:func:`setting_group`), each group with its label, whether it is at the
    paper's setting and attack, its strength of evidence and its combined verdict; the paper's settings first, then
    by strength, radius and label (:func:`build`)."""
    groups: dict[tuple[Any, ...], list[LedgerEntry]] = {}
    for e in found:
        groups.setdefault(setting_group(e["setting"]), []).append(e)
    settings: list[SettingGroup] = []
    for key, members in groups.items():
        s = members[0]["setting"]
        settings.append(
            {
                "setting": dict(key),
                "label": setting_label(s),
                "paper_setting": at_paper_setting(claim, s),
                "paper_attack": at_paper_attack(claim, s) if paper_settings else False,
                "strength": _STRENGTH.get(source_kind(s), 1),
                "verdict": combine([m["verdict"] for m in members]),
                "fragile": any(m.get("fragile") for m in members),
                "checks": [m["id"] for m in members],
            }
        )
    settings.sort(
        key=lambda g: (not g["paper_setting"], -g["strength"], number(g["setting"].get("eps", 0.0)), g["label"])
    )
    return settings


def strongest_groups(groups: Sequence[SettingGroup]) -> list[SettingGroup]:
    """The groups of settings from the strongest evidence among ``groups``: all groups of the strongest source that
    gave any evidence (or, when none did, of the strongest source at all); a group of that source that could not
    test stays in, so that the combined verdict says "partly" rather than passing over it."""
    telling = [g for g in groups if g["verdict"] in EVIDENCE_VERDICTS] or list(groups)
    strongest = max((g["strength"] for g in telling), default=None)
    return [g for g in groups if g["strength"] == strongest]
