"""The ledger: this build's entries beside the committed ones, verdicts per setting, the deliberate refresh."""

import json
import subprocess

import IPython.display
import pytest

from flatrob.evidence import claims, compare, ledger
from flatrob.evidence.verdicts import Check, Estimate, Rule
from flatrob.util.paths import build_ledger_dir, claims_dir, claims_file

PROV = {"commit": "abc", "time_utc": "2026-01-01T00:00:00+00:00", "device": "cpu", "params": {"seed": 0}}
RISES = Rule("above", 2.0, refute=1.1)


def check(
    value=30.0,
    verdict=None,
    eps=8 / 255,
    training="clean",
    part="rise",
    claim=6,
    source="live",
    architecture="wrn-10-1",
    steps=10,
    data="fashion-mnist",
):
    e = Estimate(value, value * 0.8, value * 1.2, 100)
    setting = {
        "data": data,
        "architecture": architecture,
        "epochs": 4,
        "training": training,
        "norm": "linf",
        "eps": eps,
        "steps": steps,
        "step_size": eps / 4 if steps == 10 else eps / steps,
        "source": source,
    }
    return Check(
        claim=claim,
        part=part,
        statement="s",
        verdict=verdict or RISES.judge(e),
        evidence=f"value {value}",
        setting=setting,
        measure=e.measure("m", RISES),
        fragile=RISES.fragile(e),
    )


def test_build_ledger_is_written_only_when_a_result_changes(tmp_path, monkeypatch):
    entries = [ledger.entry(check(), "ch", PROV)]
    assert ledger.record("ch", entries, root=tmp_path) is None  # without FLATROB_LEDGER=1 nothing is written
    monkeypatch.setenv(ledger.LEDGER_ENV, "1")
    path = ledger.record("ch", entries, root=tmp_path, duration_s=12.0)
    assert path == build_ledger_dir(tmp_path) / "ch.json" and not claims_dir(tmp_path).exists()
    before = path.read_text()
    later = [ledger.entry(check(), "ch", PROV | {"commit": "def", "time_utc": "2026-02-02T00:00:00+00:00"})]
    assert ledger.record("ch", later, root=tmp_path, duration_s=13.0) is None and path.read_text() == before
    assert ledger.record("ch", [ledger.entry(check(31.0), "ch", PROV)], root=tmp_path) == path
    assert ledger.load(build_ledger_dir(tmp_path))["ch"]["entries"][0]["evidence"] == "value 31.0"


def test_compare_gives_agreement_drift_and_the_committed_interval():
    committed = {
        "ch": {
            "chapter": "ch",
            "entries": [ledger.entry(check(30.0), "ch", PROV), ledger.entry(check(2.6, part="peak"), "ch", PROV)],
        }
    }
    current = {
        "ch": {
            "chapter": "ch",
            "entries": [ledger.entry(check(31.0), "ch", PROV), ledger.entry(check(1.9, part="peak"), "ch", PROV)],
        }
    }
    result = compare.compare(committed, current)
    rows = {r["check"]: r for r in result["rows"]}
    rise, peak = rows["6-rise-clean-linf-eps=0.03137"], rows["6-peak-clean-linf-eps=0.03137"]
    assert rise["agrees"] and rise["drift"] == pytest.approx(1 / 31) and rise["inside committed interval"]
    assert not peak["agrees"] and peak["fragile"]  # 2.6 [2.08, 3.12]: reproduced, its lower end 0.08 from 2
    assert result["agree"] == 1 and result["checks"] == 2 and result["disagree"] == ["6-peak-clean-linf-eps=0.03137"]
    assert result["largest_drift"] == pytest.approx(0.7 / 2.6)


def test_verdicts_per_setting_with_the_papers_setting_first():
    doc = {
        "uv": {
            "chapter": "uv",
            "entries": [
                ledger.entry(check(30.0, eps=0.2), "uv", PROV),
                ledger.entry(check(1.0, eps=8 / 255), "uv", PROV),
                ledger.entry(check(0.8, eps=8 / 255, source="sweep s"), "uv", PROV),
                ledger.entry(check(30.0, eps=8 / 255, training="adversarial"), "uv", PROV),
            ],
        }
    }
    claim6 = next(c for c in ledger.build(doc) if c["claim"] == 6)
    labels = [s["label"] for s in claim6["settings"]]
    assert claim6["settings"][0]["paper_setting"] and "sweep s" in labels[0]  # the strongest evidence first
    assert [s["paper_setting"] for s in claim6["settings"]] == [True, True, True, False]
    assert labels[-1].startswith("PGD-linf 0.2")
    # the headline: the paper's setting, from the strongest evidence there (the sweep), not the blend of all
    assert claim6["verdict"] == "not reproduced"
    assert next(c for c in ledger.build(doc) if c["claim"] == 11)["verdict"] == ledger.NOT_TESTED
    assert (
        ledger.setting_label(check().setting) == "PGD-linf 8/255, 10 steps, clean, wrn-10-1 (4 epochs), fashion-mnist"
    )
    # two settings that differ only in their variant or steps never share a label
    assert ledger.setting_label(check(steps=40).setting) != ledger.setting_label(check().setting)
    assert ledger.setting_label({**check().setting, "variant": "40 steps of 0.003922"}) != ledger.setting_label(
        check().setting
    )


def test_a_row_outside_the_regime_does_not_weaken_the_headline():
    """The adversarially trained row whose attack flips too few inputs reads "not reached in this regime"; the
    claim's headline and the report's row verdict come from the rows that reach it."""
    from flatrob.evidence import report

    rows = [
        check(30.0, source="sweep s"),
        check(30.0, source="sweep s", part="peak"),
        check(1.0, source="sweep s", training="adversarial", verdict="not reached in this regime"),
        check(1.0, source="sweep s", training="adversarial", part="peak", verdict="not reached in this regime"),
    ]
    doc = {
        "uncanny-valley": {
            "chapter": "uncanny-valley",
            "entries": [ledger.entry(c, "uncanny-valley", PROV) for c in rows],
        }
    }
    claim6 = next(c for c in ledger.build(doc) if c["claim"] == 6)
    at_paper = {s["setting"]["training"]: s["verdict"] for s in claim6["settings"] if s["paper_setting"]}
    assert at_paper == {"clean": "reproduced", "adversarial": "not reached in this regime"}
    assert claim6["verdict"] == "reproduced"
    head = report.headline(ledger.build(doc)).set_index("claim")
    assert head.loc["6 · clean", "at the paper's setting"].startswith("reproduced")
    assert head.loc["6 · AT", "at the paper's setting"].startswith("not reached in this regime")
    assert report.rows(ledger.build(doc)).set_index("row").loc["E", "verdict"] == "reproduced"
    # the old rule would have read "partly": a refuting clean row still refutes
    refuted = [check(0.5, source="sweep s"), *rows[2:]]
    doc["uncanny-valley"]["entries"] = [ledger.entry(c, "uncanny-valley", PROV) for c in refuted]
    assert next(c for c in ledger.build(doc) if c["claim"] == 6)["verdict"] == "not reproduced"


def test_the_papers_setting_is_the_whole_setting():
    paper = check().setting
    assert claims.at_paper_setting(6, paper)
    assert not claims.at_paper_setting(6, check(architecture="small-cnn").setting)  # not a network of its kind
    assert not claims.at_paper_setting(6, check(steps=40).setting)  # not its attack
    assert not claims.at_paper_setting(6, check(data="digits").setting)  # not real images
    assert not claims.at_paper_setting(10, {"data": "circle manifold", "norm": "l2", "eps": 0.3})  # the toy
    assert claims.at_paper_attack(6, check(architecture="small-cnn").setting)
    # nothing testable at the paper's setting: the headline says so and names the best further setting
    doc = {
        "uv": {
            "chapter": "uv",
            "entries": [
                ledger.entry(check(verdict="not testable here", claim=10, part="attack"), "uv", PROV),
                ledger.entry(check(claim=10, part="attack", architecture="small-cnn"), "uv", PROV),
                ledger.entry(check(verdict="holds by construction", claim=10, part="band"), "uv", PROV),
            ],
        }
    }
    claim10 = next(c for c in ledger.build(doc) if c["claim"] == 10)
    assert claim10["verdict"] == "not testable here"
    assert claim10["further"]["verdict"] == "reproduced" and "small-cnn" in claim10["further"]["label"]
    # the further setting is named with its own verdict, not one combined with other settings: a small CNN that
    # could not test beside a toy that reproduces is named as the toy, reproduced
    doc["uv"]["entries"][1] = ledger.entry(
        check(verdict="not testable here", claim=10, part="attack", architecture="small-cnn"), "uv", PROV
    )
    doc["uv"]["entries"].append(ledger.entry(check(claim=10, part="toy", data="circle manifold"), "uv", PROV))
    further = next(c for c in ledger.build(doc) if c["claim"] == 10)["further"]
    assert further["verdict"] == "reproduced" and "circle manifold" in further["label"], further


def git(root, *args):
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def test_update_refuses_a_dirty_tree_and_foreign_entries(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "_config.yml").write_text("title: t\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    with pytest.raises(compare.RefreshRefused, match="no ledger"):
        compare.update(tmp_path)
    head = subprocess.run(
        ["git", "rev-parse", "--short=10", "HEAD"], cwd=tmp_path, capture_output=True, text=True
    ).stdout.strip()
    build = build_ledger_dir(tmp_path)
    build.mkdir(parents=True)
    (build / "ch.json").write_text(
        json.dumps(
            {
                "format": ledger.LEDGER_FORMAT,
                "chapter": "ch",
                "entries": [ledger.entry(check(), "ch", PROV | {"commit": head + "+dirty"})],
            }
        )
    )
    with pytest.raises(compare.RefreshRefused, match="from commit"):
        compare.update(tmp_path)
    (build / "ch.json").write_text(
        json.dumps(
            {
                "format": ledger.LEDGER_FORMAT,
                "chapter": "ch",
                "entries": [ledger.entry(check(), "ch", PROV | {"commit": head, "machine": {"cpu": "X"}})],
            }
        )
    )
    (tmp_path / "_config.yml").write_text("title: changed\n")
    with pytest.raises(compare.RefreshRefused, match="uncommitted changes"):
        compare.update(tmp_path)
    git(tmp_path, "checkout", "_config.yml")
    written = compare.update(tmp_path)
    assert claims_file(tmp_path) in written and (claims_dir(tmp_path) / "ch.json").is_file()
    merged = json.loads(claims_file(tmp_path).read_text())
    assert merged["commit"] == head and merged["machine"] == {"cpu": "X"}
    assert [c["verdict"] for c in merged["claims"] if c["claim"] == 6] == ["reproduced"]
    # an entry of a committed sweep: made at the sweep's commit, judged again at this one; it counts
    swept = Check.from_dict(check().as_dict() | {"provenance": {"commit": "0123456789", "source": "sweep s"}})
    sweep_entry = ledger.entry(swept, "ch", PROV | {"commit": head})
    assert sweep_entry["provenance"]["commit"] == "0123456789" and sweep_entry["provenance"]["judged_at"] == head
    (build / "ch.json").write_text(
        json.dumps({"format": ledger.LEDGER_FORMAT, "chapter": "ch", "entries": [sweep_entry]})
    )
    compare.update(tmp_path)


def test_chapter_comparison_only_for_the_committed_parameters(tmp_path, monkeypatch):
    folder = claims_dir(tmp_path)
    folder.mkdir(parents=True)
    (folder / "ch.json").write_text(
        json.dumps({"format": ledger.LEDGER_FORMAT, "chapter": "ch", "entries": [ledger.entry(check(), "ch", PROV)]})
    )
    same = compare.compare_chapter("ch", [ledger.entry(check(), "ch", PROV)], root=tmp_path)
    assert "1 of 1 verdicts agree" in same["note"] and "identical" in same["note"]
    other = compare.compare_chapter("ch", [ledger.entry(check(), "ch", PROV | {"params": {"seed": 1}})], root=tmp_path)
    assert other["rows"] == [] and "parameters differ" in other["note"]
    assert "No committed evidence" in compare.compare_chapter("none", [], root=tmp_path)["note"]
    moved = compare.compare_chapter("ch", [ledger.entry(check(31.0), "ch", PROV)], root=tmp_path)
    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append(obj))
    compare.comparison_display(moved)
    assert "This build and the committed evidence" in shown[0].data
    html = [o["text/html"] for o in shown[1:]]
    assert len(html) == 1 and 'class="flatrob-table"' in html[0]  # stacked on a phone
    assert "<code>6-rise-clean-linf-eps=0.03137</code>" in html[0] and "3.2%" in html[0]
    assert r"\begin{longtable}" in shown[1]["text/latex"]  # and a LaTeX table in the PDF


def test_committed_check_names_are_unique():
    """One name, one result: the comparison with a build pairs entries by name, so a name shared by two settings (a
    sweep's combinations) would compare one of them and call the others "not committed"."""
    for chapter, found in ledger.load(claims_dir()).items():
        names = [e["id"] for e in found["entries"]]
        assert len(names) == len(set(names)), (chapter, sorted({n for n in names if names.count(n) > 1})[:3])


def test_every_row_label_of_a_chapter_is_unique():
    """A page's checks table names each row by claim, part and setting in words; no two committed entries of a
    chapter may read the same there (the 40-step variant and the 10-step attack once did)."""
    for chapter, found in ledger.load(claims_dir()).items():
        labels = [f"{e['claim']}-{e.get('part', '')} · {ledger.setting_label(e['setting'])}" for e in found["entries"]]
        twice = sorted({lab for lab in labels if labels.count(lab) > 1})
        assert not twice, (chapter, twice[:3])
