"""Sweeps on Snakemake: plan and check the grid, run it, re-run nothing, report failures, survive Ctrl-C, pass
arguments on, and judge over seeds by majority."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flatrob.evidence import ledger
from flatrob.evidence.seeds import SUMMARY_FORMAT, over_seeds, summarize, sweep_checks
from flatrob.evidence.verdicts import OVER_SEEDS_RULE, Rule
from flatrob.jobs.chapter import SWEEP_JOB_NOTE
from flatrob.jobs.params import ParameterError
from flatrob.jobs.run import partial_runs
from flatrob.jobs.sweep import job_id, plan, split_values
from flatrob.util.paths import GRID, PROMOTED, SUMMARY, is_sweep_job, partial_dir, sweep_job_dir
from helpers import interruptible, write_cifar

ROOT = Path(__file__).resolve().parents[1]
SMALL = [
    "-p",
    "n_train",
    "1000",
    "-p",
    "epochs",
    "1",
    "-p",
    "adv_steps",
    "1",
    "-p",
    "attack_steps",
    "6",
    "-p",
    "n_samples",
    "30",
    "-p",
    "noise_steps",
    "4",
    "-p",
    "radii",
    "[0.2]",
]


def sweep(tmp_path, *args, env=None, timeout=600, snakemake=()):
    after = ["--", *snakemake] if snakemake else []
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "flatrob",
            "sweep",
            "uncanny-valley",
            *args,
            "--out",
            str(tmp_path / "sweeps"),
            "--cores",
            "2",
            *after,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.fixture()
def env(tmp_cache):
    e = dict(os.environ, FLATROB_CACHE=str(tmp_cache))
    e.pop("MPLBACKEND", None)
    return e


def test_split_values_and_job_ids():
    assert split_values("0,1,2") == [0, 1, 2]
    assert split_values("[0.1, 0.2],[0.3]") == [[0.1, 0.2], [0.3]]
    assert split_values("fashion-mnist,digits") == ["fashion-mnist", "digits"]
    with pytest.raises(ParameterError, match="cannot read"):
        split_values("1,,2")
    assert job_id({"seed": 1, "dataset": "digits"}) == "dataset-digits_seed-1"
    assert job_id({"radii": [0.1, 0.2]}) == "radii-0.10.2"


def test_bad_values_fail_before_anything_runs(tmp_path):
    with pytest.raises(ParameterError, match="'epochs'.*must be >= 1; got 0"):
        plan("uncanny-valley", {"seed": [0, 1], "epochs": [1, 0]})
    with pytest.raises(ParameterError, match="unknown parameter"):
        plan("uncanny-valley", {"stepz": [1, 2]})
    with pytest.raises(ParameterError, match="do not fit"):  # a data set the default architecture cannot take
        plan("uncanny-valley", {"seed": [0], "dataset": ["fashion-mnist", "digits"]})
    proc = sweep(tmp_path, "-p", "seed", "0,1", "-p", "attack_eps", "0.1,.nan")
    assert proc.returncode == 2 and "finite" in proc.stderr and not (tmp_path / "sweeps").exists()


def seed_run(value, verdict, fragile=False):
    rule = Rule("above", 2.0, refute=1.1).as_dict()
    return [
        {
            "id": "6-rise",
            "claim": 6,
            "part": "rise",
            "statement": "s",
            "verdict": verdict,
            "fragile": fragile,
            "setting": {"seed": 0, "norm": "linf", "eps": 0.1},
            "measure": {"name": "m", "value": value, "ci95": [value * 0.9, value * 1.1], "rule": rule},
        }
    ]


def test_over_seeds_is_a_majority_of_the_seeds_whole_rules():
    agree = over_seeds(
        {0: seed_run(3.0, "reproduced"), 1: seed_run(3.2, "reproduced"), 2: seed_run(2.9, "reproduced")}
    )[0]
    assert agree["verdict"] == "reproduced" and not agree["fragile"] and agree["resolved"]
    assert agree["measure"]["value"] == pytest.approx(3.0333, rel=1e-3) and agree["seeds"] == [0, 1, 2]
    assert "seed" not in agree["setting"]
    # all three seeds "partly": the combination is never "not reproduced"
    partly = over_seeds({s: seed_run(1.9, "partly") for s in range(3)})[0]
    assert partly["verdict"] == "partly" and not partly["resolved"] and partly["fragile"]  # identical: unresolved
    # two of three "partly": never "reproduced"
    mixed = over_seeds({0: seed_run(2.5, "reproduced"), 1: seed_run(1.9, "partly"), 2: seed_run(1.9, "partly")})[0]
    assert mixed["verdict"] == "partly" and mixed["fragile"]
    lone = over_seeds({0: seed_run(3.0, "reproduced")})[0]
    assert lone["verdict"] == "reproduced" and "measure" not in lone  # one seed: its verdict, no interval


def test_a_check_that_holds_by_construction_keeps_its_measured_number_over_seeds():
    built = over_seeds({s: seed_run(0.01 * (s + 1), "holds by construction") for s in range(3)})[0]
    assert built["verdict"] == "holds by construction" and not built["fragile"]  # never counted as evidence
    assert built["measure"]["value"] == pytest.approx(0.02, rel=0.1)  # but its number is shown


def test_only_summaries_in_the_current_format_of_committed_sweeps_count(tmp_path, monkeypatch):
    monkeypatch.setenv("FLATROB_ROOT", str(tmp_path))
    folder = tmp_path / "data" / "sweeps" / "s"
    folder.mkdir(parents=True)
    combo = {
        "setting": {},
        "runs": [{"seed": 0}, {"seed": 1}],
        "checks": over_seeds({0: seed_run(3.0, "reproduced"), 1: seed_run(3.1, "reproduced")}),
    }
    summary = {"format": SUMMARY_FORMAT, "chapter": "uncanny-valley", "name": "s", "combinations": [combo]}
    (folder / "summary.json").write_text(json.dumps(summary))
    assert sweep_checks("uncanny-valley") == []  # not committed, not promoted
    (folder / PROMOTED).write_text("yes\n")
    found = sweep_checks("uncanny-valley")
    assert len(found) == 1 and found[0].setting["source"] == "sweep s" and found[0].setting["seeds"] == [0, 1]
    assert found[0].id == "6-rise-linf-eps=0.1-sweep_s" and "the seeds' verdicts" in found[0].evidence
    (folder / "summary.json").write_text(json.dumps(summary | {"format": 1}))
    assert sweep_checks("uncanny-valley") == []  # made by older code


def test_clean_lists_sweep_partials_and_promote_takes_a_sweep(tmp_path, monkeypatch):
    monkeypatch.setenv("FLATROB_ROOT", str(tmp_path))
    partial = tmp_path / "data" / "sweeps" / "s" / "runs" / "uncanny-valley" / ".seed-0.partial"
    partial.mkdir(parents=True)
    assert partial in partial_runs()
    (tmp_path / "data" / "sweeps" / "s" / "summary.json").write_text("{}")
    proc = subprocess.run(
        [sys.executable, "-m", "flatrob", "promote", str(tmp_path / "data" / "sweeps" / "s")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and (tmp_path / "data" / "sweeps" / "s" / PROMOTED).exists()


def test_arguments_after_the_double_dash_reach_snakemake_and_a_stale_lock_is_removed(tmp_path):
    args = ["-p", "seed", "0", *SMALL, "--name", "dry"]
    first = sweep(tmp_path, *args, snakemake=["--dry-run"], timeout=300)
    assert "unrecognized arguments" not in first.stderr and first.returncode == 1, first.stderr[-2000:]
    locks = tmp_path / "sweeps" / "dry" / ".snakemake" / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    (locks / "0.input.lock").write_text("left by a killed sweep\n")
    again = sweep(tmp_path, *args, snakemake=["--dry-run"], timeout=300)
    assert "removed the lock left by an earlier sweep" in again.stdout and "LockException" not in again.stderr


@pytest.mark.slow
def test_ctrl_c_on_a_sweep_releases_its_lock(tmp_path, env):
    """SIGINT to the flatrob process alone (as `timeout -s INT` sends it): Snakemake is told and given time, the lock
    is released, and the interrupted jobs are counted as not run, not as failed."""
    cmd = [
        sys.executable,
        "-m",
        "flatrob",
        "sweep",
        "uncanny-valley",
        "-p",
        "seed",
        "0,1",
        "-p",
        "epochs",
        "200",
        "-p",
        "n_train",
        "2000",
        "--name",
        "stop",
        "--out",
        str(tmp_path / "sweeps"),
        "--cores",
        "1",
    ]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible
    )
    runs = tmp_path / "sweeps" / "stop" / "runs" / "uncanny-valley"
    deadline = time.time() + 300  # generous: on a loaded machine Snakemake and the kernel start slowly
    while not list(runs.glob(".*.partial/provenance.json")) and time.time() < deadline:
        time.sleep(0.5)  # wait until a job's run is under way
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, out + err
    assert "interrupted; 0 done, 2 not run" in out and "failed" not in out
    assert not list((tmp_path / "sweeps" / "stop" / ".snakemake" / "locks").glob("*.lock"))


@pytest.mark.slow
def test_local_sweep_runs_reports_failures_and_reruns_nothing_finished(tmp_path, env):
    """Two data sets x two seeds: the two Fashion-MNIST runs finish and are merged over their seeds; the two CIFAR-10
    runs fail (the files are in place and read without checksums, so the rules pass; one of them is garbage, so the
    chapter fails in its kernel) and are reported with their logs while the others go on; running the sweep again
    redoes nothing that finished."""
    write_cifar(tmp_path / "cifar", "cifar10")
    (tmp_path / "cifar" / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"not a pickle")
    env = env | {"FLATROB_CIFAR_CHECKSUM": "0"}
    args = [
        "-p",
        "seed",
        "0,1",
        "-p",
        "dataset",
        "fashion-mnist,cifar10",
        "-p",
        "data_root",
        str(tmp_path / "cifar"),
        "-p",
        "architecture",
        "mlp",
        *SMALL,
        "--name",
        "grid",
    ]
    proc = sweep(tmp_path, *args, env=env)
    assert proc.returncode == 1, proc.stderr[-2000:] + proc.stdout[-2000:]
    assert "2 done, 2 failed" in proc.stdout
    folder = tmp_path / "sweeps" / "grid"
    logs = folder / "logs"
    failed = [line for line in proc.stdout.splitlines() if line.strip().startswith("failed:")]
    assert len(failed) == 2 and all("dataset-cifar10" in line and str(logs) in line for line in failed)
    assert all("error:" in p.read_text() for p in logs.iterdir() if "cifar10" in p.name)
    runs = sorted(p.name for p in (folder / "runs" / "uncanny-valley").iterdir() if not p.name.startswith("."))
    assert len(runs) == 2 and all("dataset-fashionmnist" in r for r in runs)  # the failed ones left partial folders
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["finished"] == 2 and len(summary["combinations"]) == 1 and summary["format"] == SUMMARY_FORMAT
    assert summary["combinations"][0]["setting"]["dataset"] == "fashion-mnist"
    assert {tuple(c["seeds"]) for c in summary["combinations"][0]["checks"]} == {(0, 1)}
    finished = "runs/uncanny-valley/[!.]*/provenance.json"  # the failed runs' partial folders are started afresh
    stamps = {p: p.stat().st_mtime_ns for p in folder.glob(finished)}
    assert len(stamps) == 2
    again = sweep(tmp_path, *args, env=env)
    assert "2 done, 2 failed" in again.stdout  # only the failed jobs were tried again
    assert stamps == {p: p.stat().st_mtime_ns for p in folder.glob(finished)}
    # as evidence, the sweep's entries carry the sweep's provenance: its runs' commit and parameters, not the reader's
    target = tmp_path / "data" / "sweeps" / "grid"
    shutil.copytree(folder, target)
    (target / "PROMOTED").write_text("yes\n")
    found = sweep_checks("uncanny-valley", root=tmp_path)
    made = {json.loads(p.read_text())["commit"] for p in target.glob(finished)}
    assert found and all(c.provenance["commit"] == ", ".join(sorted(made)) for c in found)
    assert all(c.provenance["params"]["seed"] == [0, 1] for c in found)
    assert all(c.provenance["params"]["dataset"] == "fashion-mnist" for c in found)
    entry = ledger.entry(found[0], "uncanny-valley", {"commit": "the-reader"})
    assert entry["provenance"]["commit"] == found[0].provenance["commit"]
    assert entry["provenance"]["judged_at"] == "the-reader"


@pytest.mark.slow
def test_a_sequential_sweep_needs_no_snakemake_and_resumes(tmp_path, env):
    """--sequential (the default where Snakemake is missing, as on a bare GPU machine) runs the jobs in one process
    into the same layout, merges them over seeds, and redoes nothing that finished."""
    args = ["-p", "seed", "0,1", "-p", "architecture", "mlp", *SMALL, "--name", "seq", "--sequential"]
    proc = sweep(tmp_path, *args, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    assert "2 done, 0 failed" in proc.stdout and "one at a time" in proc.stdout
    folder = tmp_path / "sweeps" / "seq"
    assert f"summary: {folder / 'summary.json'}" in proc.stdout  # the same ending as a Snakemake sweep
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["finished"] == 2 and {tuple(c["seeds"]) for c in summary["combinations"][0]["checks"]} == {(0, 1)}
    stamps = {p: p.stat().st_mtime_ns for p in folder.glob("runs/uncanny-valley/*/provenance.json")}
    # a job measures; the committed evidence is the page's to draw, not every job's (ChapterContext.in_sweep)
    notebooks = [p.read_text() for p in folder.glob("runs/uncanny-valley/*/notebook.ipynb")]
    assert len(notebooks) == 2 and all(SWEEP_JOB_NOTE in nb and OVER_SEEDS_RULE[:26] not in nb for nb in notebooks)
    again = sweep(tmp_path, *args, env=env)
    assert again.returncode == 0 and stamps == {p: p.stat().st_mtime_ns for p in stamps}


def test_a_run_knows_whether_it_is_a_job_of_a_sweep(tmp_path):
    sweep_dir = tmp_path / "s"
    job = sweep_job_dir(sweep_dir, "basin", "seed-0")
    job.mkdir(parents=True)
    assert not is_sweep_job(job)  # no plan beside it: a run folder like any other
    (sweep_dir / GRID).write_text("{}")
    assert is_sweep_job(job) and is_sweep_job(partial_dir(job))
    assert not is_sweep_job(tmp_path / "runs" / "basin" / "seed-0")


def _same(a, b, path="", tol=1e-9):
    """Where two JSON documents differ (numbers to a relative ``tol``): a list of paths, empty when they agree."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _same(a.get(k), b.get(k), f"{path}/{k}", tol)]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items against {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _same(x, y, f"{path}[{i}]", tol)]
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return [] if a == pytest.approx(b, rel=tol, abs=1e-300) else [f"{path}: {a} against {b}"]
    return [] if a == b else [f"{path}: {a!r} against {b!r}"]


def test_every_committed_summary_is_what_the_code_derives_from_its_runs():
    """A committed ``summary.json`` is a derived file: the sweep's runs judged again by this code. One that disagrees
    (made by older rules, or edited) fails here; ``python -m flatrob aggregate data/sweeps/<name>`` mends it."""
    sweeps = sorted(p.parent for p in (ROOT / "data" / "sweeps").glob(f"*/{SUMMARY}"))
    assert sweeps
    stale = {}
    for sweep in sweeps:
        derived = json.loads(json.dumps(summarize(sweep), default=str))
        found = _same(derived, json.loads((sweep / SUMMARY).read_text()))
        if found:
            stale[sweep.name] = found[:3]
    assert not stale, f"committed summaries that differ from their runs (re-aggregate them): {stale}"


def test_the_summary_comparison_can_fail():
    assert _same({"a": [1.0, {"v": "x"}]}, {"a": [1.0, {"v": "x"}]}) == []
    assert _same({"a": [1.0]}, {"a": [1.0001]}) == ["/a[0]: 1.0 against 1.0001"]
    assert _same({"verdict": "reproduced"}, {"verdict": "partly"}) == ["/verdict: 'reproduced' against 'partly'"]
