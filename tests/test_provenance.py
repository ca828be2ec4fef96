"""Where results go and what they record: the layout, provenance, what counts as committed evidence."""

import json
import subprocess

import pytest
import torch

from flatrob.jobs.run import Run
from flatrob.util import devices, io, paths, provenance
from flatrob.util.provenance import provenance_line


def test_provenance_is_json():
    record = provenance.provenance({"epochs": 3}, "cpu")
    json.dumps(record)
    assert record["params"] == {"epochs": 3} and record["device"].startswith("cpu")
    assert "commit" in provenance_line(record) and "epochs=3" in provenance_line(record)
    radii = provenance_line(provenance.provenance({"eps": 8 / 255, "lr": 0.05, "radii": [2 / 255, 0.2]}, "cpu"))
    assert "eps=8/255" in radii and "lr=0.05" in radii and "radii=[2/255, 0.2]" in radii and "0.0313" not in radii
    # a chapter's footer: only the parameters that differ from its defaults (all of them are in its parameter table)
    record = provenance.provenance({"epochs": 3, "eps": 8 / 255, "seed": 0}, "cpu")
    line = provenance_line(record, {"epochs": 4, "eps": 8 / 255, "seed": 0})
    assert line.startswith("parameters: the chapter's defaults except epochs=3 | device: cpu")
    assert provenance_line(record, record["params"]).startswith("parameters: the chapter's defaults | device")


def test_git_commit_dirty_ignores_data(tmp_path):
    import subprocess

    from flatrob.util.provenance import git_commit

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "data").mkdir()
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "data" / "claims.json").write_text("[]\n")
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    clean = git_commit(tmp_path)
    assert len(clean) == 10 and not clean.endswith("+dirty")
    (tmp_path / "data" / "claims.json").write_text("[1]\n")  # a result the chapters write
    assert git_commit(tmp_path) == clean
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == clean + "+dirty"


def test_provenance_records_the_machine_and_its_kernels():
    record = provenance.provenance({}, "cpu")
    m = record["machine"]
    assert {"cpu", "threads", "cpu_capability", "onednn_isa", "mkl_cbwr", "kernels_pinned"} <= set(m)
    assert m["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and record["device_type"] == "cpu"


def test_thread_count_is_fixed(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv(devices.THREADS_ENV, "1")
        assert devices.fix_threads() == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv(devices.THREADS_ENV, "zero")
        with pytest.raises(ValueError, match="FLATROB_THREADS"):
            devices.fix_threads()
    finally:
        torch.set_num_threads(before)


def test_resolve_device():
    assert devices.resolve_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="device"):
        devices.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            devices.resolve_device("cuda")


def test_root_results_and_cache_follow_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.ROOT_ENV, raising=False)
    monkeypatch.delenv(paths.CACHE_ENV, raising=False)
    (tmp_path / "book" / "experiments").mkdir(parents=True)
    (tmp_path / "_config.yml").write_text("title: t\n")
    monkeypatch.chdir(tmp_path / "book" / "experiments")  # where a chapter executes
    assert paths.repo_root() == tmp_path.resolve()
    assert paths.cache_dir() == tmp_path.resolve() / "cache"
    other = tmp_path / "elsewhere"
    monkeypatch.setenv(paths.ROOT_ENV, str(other))
    assert paths.repo_root() == other.resolve()
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "c"))
    assert paths.cache_dir() == tmp_path / "c"


def test_only_committed_or_promoted_runs_count(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("config", "user.email", "t@t")
    git("config", "user.name", "t")
    for run in ("a-committed", "b-local", "c-promoted", ".d.partial"):
        d = tmp_path / "data" / "runs" / "ch" / run
        d.mkdir(parents=True)
        (d / "provenance.json").write_text(json.dumps({"params": {"run": run}}))
    (tmp_path / "data" / "runs" / "ch" / "c-promoted" / paths.PROMOTED).write_text("yes\n")
    git("add", "data/runs/ch/a-committed")
    git("commit", "-qm", "a run")
    staged = tmp_path / "data" / "runs" / "ch" / "e-staged"
    staged.mkdir()
    (staged / "provenance.json").write_text("{}")
    git("add", "data/runs/ch/e-staged")  # staged is not committed
    found = [r.name for r in Run.committed("ch", root=tmp_path)]
    assert found == ["a-committed", "c-promoted"]
    (tmp_path / "data" / "runs" / "ch" / "a-committed" / "provenance.json").write_text(json.dumps({"params": {}}))
    assert [r.name for r in Run.committed("ch", root=tmp_path)] == ["c-promoted"]  # changed since
    assert Run.committed("none", root=tmp_path) == []


def test_results_files_are_strict_json(tmp_path):
    io.save_results(tmp_path, {"s.json": {"a": float("nan"), "b": [1.0, float("inf")], "c": 2.0}})
    assert json.loads((tmp_path / "s.json").read_text(), parse_constant=lambda c: pytest.fail(c)) == {
        "a": None,
        "b": [1.0, None],
        "c": 2.0,
    }


def test_the_twin_story_names_what_differs_between_the_sweep_run_and_the_live_run():
    """A live run and a sweep run with the same parameters: equal checks are "one result, computed twice"; where
    a number differs, the story names which of commit, processor and device (thread count) differ, or says that
    none recorded does."""
    from flatrob.evidence.compare import twin_story
    from flatrob.evidence.verdicts import Check

    def check(value):
        return Check(
            claim=6,
            part="collapse",
            statement="s",
            verdict="reproduced",
            evidence="e",
            setting={"attack": "PGD-linf"},
            measure={"value": value},
        )

    def record(commit, threads):
        return {
            "commit": commit,
            "machine": {"cpu": "Xeon"},
            "device": f"cpu (x86_64, {threads} threads)",
            "params": {"seed": 0},
        }

    sweep = (record("aaa", 1), [check(0.01)])
    same = twin_story(*sweep, [check(0.01)], record("aaa", 1), "s")
    assert "one result, computed twice" in same and "Xeon, cpu (x86_64, 1 threads)" in same
    apart = twin_story(*sweep, [check(0.02)], record("bbb", 2), "s")
    assert "0 of 1 checks agree exactly" in apart
    assert "the commit is aaa in the sweep and bbb here" in apart
    assert (
        "the device (with its thread count) is cpu (x86_64, 1 threads) in the sweep and cpu (x86_64, 2 threads)"
        in apart
        and "the processor" not in apart
    )
    unexplained = twin_story(*sweep, [check(0.02)], record("aaa", 1), "s")
    assert "nothing recorded explains the difference" in unexplained


def test_a_sweep_figure_caption_names_shared_parameters_seeds_commits_devices_and_the_drawing_commit():
    from flatrob.util.provenance import sweep_caption

    def result(sweep, arch, seed, commit, threads):
        return {
            "sweep": sweep,
            "seed": seed,
            "setting": {"architecture": arch, "lr": 0.05},
            "run": {"commit": commit, "device": f"cpu (x86_64, {threads} threads)"},
        }

    one = sweep_caption([result("a", "wrn-10-1", s, "c1", 1) for s in (2, 0, 1)], "HEAD1")
    assert one == (
        "committed sweep a: architecture=wrn-10-1, lr=0.05; seeds [0, 1, 2]; made at commit c1 on "
        "cpu (x86_64, 1 threads); drawn at commit HEAD1"
    )
    study = sweep_caption([result("a", "wrn-10-1", 0, "c1", 1), result("b", "wrn-10-2", 0, "c2", 2)], "HEAD2")
    assert study.startswith("committed sweeps a, b: lr=0.05, architecture varying; seeds [0]; made at commit c1, c2 on")
    assert "architecture=" not in study and "cpu (x86_64, 1 threads), cpu (x86_64, 2 threads)" in study
    # with the chapter's defaults, only what differs from them; beyond two commits, the first and a count
    many = [result("a", "wrn-10-1", s, f"c{s}", 1) for s in range(4)]
    short = sweep_caption(many, "HEAD3", {"architecture": "small-cnn", "lr": 0.05}, "basin")
    assert short.startswith(
        "committed sweep a: chapter basin's defaults except architecture=wrn-10-1; seeds [0, 1, 2, 3]"
    )
    assert "made at commit c0 and 3 more (in the summaries) on" in short
    with pytest.raises(ValueError, match="at least one"):
        sweep_caption([], "HEAD")


def test_radii_read_as_the_paper_writes_them_everywhere():
    from flatrob.util.provenance import in_255ths, short_value

    assert [short_value(k / 255) for k in (2, 8, 12, 16, 32)] == ["2/255", "8/255", "12/255", "16/255", "32/255"]
    assert [short_value(x) for x in (33 / 255, 0.1, 0.2, 0.025, 0.05)] == ["0.1294", "0.1", "0.2", "0.025", "0.05"]
    assert in_255ths(0.0) is None and in_255ths(-8 / 255) is None
    assert short_value([8 / 255, 0.1]) == "[8/255, 0.1]" and short_value("wrn-10-1") == "wrn-10-1"
