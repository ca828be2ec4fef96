"""What the book finds, in words, from the committed ledger: one sentence per empirical claim (:func:`findings`, the
landing page and each chapter's overview), why a claim is not reproduced (:func:`reasons`, the report), and a
chapter's closing discussion (:func:`discussion`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from flatrob.evidence.ledger import source_kind, strongest_groups
from flatrob.evidence.records import ClaimRecord, sequence
from flatrob.evidence.report import _in_words, _main, _setting_entries, _value, differences, markdown_math
from flatrob.evidence.verdicts import NOT_REACHED, counted_settings

__all__ = ["FINDINGS", "discussion", "findings", "reasons"]


#: The empirical claims as a reader meets them on the landing page: a short name and the chapter that checks each.
FINDINGS = {
    6: ("The uncanny valley", "uncanny-valley"),
    7: ("Adversarial training and the basin", "basin"),
    8: ("Flatness by scaling the last layer", "last-layer-scaling"),
    9: ("Gradient masking", "gradient-masking"),
    10: ("Confidently wrong points are flat", "confidence-flatness"),
    11: ("Sharpness as a detector", "detector"),
    12: ("The feature norm along the path", "uncanny-valley"),
}


def findings(claims: Sequence[ClaimRecord], chapter: str | None = None) -> str:
    """What the book finds, one Markdown bullet per empirical claim, from the committed ledger: the short name linked
    to its chapter, the verdict at the paper's setting (from the rows that reach its regime), the decisive measure
    in words (:data:`~flatrob.evidence.claims.IN_WORDS`), named with its value and interval, where it comes from, and
    the paper's number. ``chapter``: only the claims
    of that chapter's ledger entries (a chapter's overview), else every claim of :data:`FINDINGS`."""
    out = []
    for claim in claims:
        if claim["claim"] not in FINDINGS:
            continue
        if chapter is not None and not any(c.get("chapter") == chapter for c in claim["checks"]):
            continue
        name, home = FINDINGS[claim["claim"]]
        paper = [s for s in claim["settings"] if s["paper_setting"] and s["strength"] > 0]
        head = strongest_groups(paper)
        counted = [g for g, n in zip(head, counted_settings([g["verdict"] for g in head]), strict=True) if n]
        entries = _setting_entries(claim, counted)
        deciding = [e for e in entries if e["verdict"] == claim["verdict"]]  # the part that made the verdict, if any
        main = _main(claim["claim"], deciding) or _main(claim["claim"], entries)
        verdict = claim["verdict"] + (" (fragile)" if claim["fragile"] else "")
        text = f"- **{name}** ({{ref}}`{home}`): {verdict} at the paper's setting"
        if main and (m := main.get("measure")):
            s = main["setting"]
            seeds = s.get("seeds")
            where = f"{s.get('architecture', '?')}" + (f", {len(sequence(seeds))} seeds" if seeds else ", one run")
            words = _in_words(main)
            text += (
                f": {words} ({m['name']} {_value(main)}; {where})"
                if words
                else f": {m['name']} {_value(main)} ({where})"
            )
        text += f"; the paper: {claim['paper']}."
        out.append(markdown_math(text))
    return "\n".join(out)


def reasons(claims: Sequence[ClaimRecord], extra: Mapping[int, str] | None = None) -> str:
    """Why each empirical claim that is not reproduced at the paper's setting is not, as Markdown bullets: the checks
    that made the verdict (the refuted ones of a claim that is not reproduced, the undecided ones of a "partly"), each
    with its decisive measure against its rule; the rows that did not reach the regime; and ``extra`` (claim -> a
    computed sentence of its own, e.g. where on the attack's path the detector separates)."""
    from flatrob.evidence.verdicts import SILENT_VERDICTS, Rule

    out = []
    for claim in claims:
        if claim["kind"] != "empirical" or claim["verdict"] not in ("not reproduced", "partly", *SILENT_VERDICTS):
            continue
        paper = [s for s in claim["settings"] if s["paper_setting"] and s["strength"] > 0]
        head = strongest_groups(paper)
        counted = [g for g, n in zip(head, counted_settings([g["verdict"] for g in head]), strict=True) if n]
        want = {"not reproduced"} if claim["verdict"] == "not reproduced" else {"partly", "cannot decide here"}
        made = [e for e in _setting_entries(claim, counted) if e["verdict"] in want]
        parts = []
        for e in made[:3]:
            m = e.get("measure")
            what = f"{e['claim']}-{e['part']}" if e.get("part") else str(e["claim"])
            rule = f" (the rule: {Rule.from_dict(m['rule']).describe()})" if m and m.get("rule") else ""
            value = f"{m['name']} {_value(e)}{rule}" if m else e["evidence"][:160]
            model = " ".join(str(e["setting"][k]) for k in ("training", "architecture") if e["setting"].get(k))
            model += f", {e['setting']['source']}" if source_kind(e["setting"]) != "live" else ""
            parts.append(f"`{what}` ({model}): {value}")
        text = f"- **Claim {claim['claim']}** ({claim['verdict']}): " + ("; ".join(parts) or "no check decided it")
        outside = [g["label"] for g in head if g["verdict"] == NOT_REACHED]
        if outside:
            text += f"; not reached in this regime, and so left out: {'; '.join(outside)}"
        if extra and claim["claim"] in extra:
            text += f". {extra[claim['claim']]}"
        out.append(markdown_math(text + ("" if text.endswith(".") else ".")))
    return "\n".join(out)


def discussion(claims: Sequence[ClaimRecord], chapter: str, extra: Mapping[int, str] | None = None) -> str:
    """A chapter's closing discussion, computed from the committed ledger: what held (its empirical claims reproduced
    at the paper's setting, as :func:`findings` says them), what did not and why (:func:`reasons`, with ``extra``:
    claim -> a computed sentence of the chapter's own), and what still differs from the paper at the settings that
    made these verdicts (:func:`differences`).

    Args:
        claims: :func:`flatrob.evidence.ledger.build` of the committed ledger.
        chapter: the chapter's name; its claims are those with a ledger entry from it.
        extra: optional sentences per claim, added to its reason.

    Returns:
        Markdown, three short paragraphs; one line where the ledger holds nothing of the chapter.
    """
    mine = [c for c in claims if c["kind"] == "empirical" and any(e.get("chapter") == chapter for e in c["checks"])]
    if not mine:
        return "The committed ledger holds no verdict of this chapter yet (see {ref}`reproduction`)."
    held = [c for c in mine if c["verdict"] == "reproduced"]
    rest = [c for c in mine if c["verdict"] != "reproduced"]
    out = ["**What held.**" + ("\n\n" + findings(held) if held else " None of this chapter's claims, as said next.")]
    out.append("**What did not, and why.**" + ("\n\n" + reasons(rest, extra) if rest else " Nothing: every claim of "
                                               "this chapter is reproduced at the paper's setting."))  # fmt: skip
    out.append(differences(mine))
    return "\n\n".join(out)
