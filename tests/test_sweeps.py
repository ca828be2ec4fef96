"""Sweeps on Snakemake: plan and check the grid, run it, re-run nothing, report failures, aggregate over seeds."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flatrob import checks
from flatrob.runs import ParameterError
from flatrob.sweeps import job_id, over_seeds, plan, split_values
from helpers import write_cifar

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["-p", "n_train", "1000", "-p", "epochs", "1", "-p", "adv_steps", "1", "-p", "attack_steps", "6",
         "-p", "n_samples", "30", "-p", "noise_steps", "4", "-p", "radii", "[0.2]"]


def sweep(tmp_path, *args, env=None):
    return subprocess.run([sys.executable, "-m", "flatrob", "sweep", "uncanny-valley", *args, "--out", str(tmp_path / "sweeps"),
                           "--cores", "2"], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


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
    proc = sweep(tmp_path, "-p", "seed", "0,1", "-p", "attack_eps", "0.1,.nan")
    assert proc.returncode == 2 and "finite" in proc.stderr and not (tmp_path / "sweeps").exists()


def test_over_seeds_judges_the_measure_against_its_threshold():
    def run(value, verdict="reproduced"):
        return [{"id": "6-rise", "claim": 6, "statement": "s", "verdict": verdict,
                 "measure": {"name": "m", "value": value, "ci95": [value, value],
                             "rule": [list(r) for r in checks.rule_above(2.0)]}}]

    assert over_seeds({0: run(3.0), 1: run(3.2), 2: run(2.9)})[0]["verdict"] == "reproduced"
    assert over_seeds({0: run(1.0), 1: run(1.2), 2: run(0.9)})[0]["verdict"] == "not reproduced"
    spread = over_seeds({0: run(1.0), 1: run(3.0), 2: run(2.5)})[0]
    assert spread["verdict"] == "partly" and spread["min"] == 1.0 and spread["max"] == 3.0
    # a three-level rule (claim 7's basin) is judged over the seeds as within a run
    def basin(value):
        return [{"id": "7-basin", "claim": 7, "statement": "s", "verdict": "partly",
                 "measure": {"name": "r", "value": value, "ci95": [value, value], "rule": [list(r) for r in checks.WIDENS]}}]

    assert over_seeds({0: basin(1.4), 1: basin(1.5), 2: basin(1.6)})[0]["verdict"] == "partly"
    lone = over_seeds({0: run(3.0)})[0]
    assert lone["verdict"] == "reproduced" and "mean" not in lone  # one seed: its verdict, no interval


@pytest.mark.slow
def test_local_sweep_runs_reports_failures_and_reruns_nothing_finished(tmp_path, env):
    """Two data sets x two seeds: the two Fashion-MNIST runs finish and are merged over their seeds; the two CIFAR-10
    runs fail (files in place, so the rules pass; checksums wrong, so the run fails) and are reported with their
    logs while the others go on; running the sweep again redoes nothing that finished."""
    write_cifar(tmp_path / "cifar", "cifar10")
    args = ["-p", "seed", "0,1", "-p", "dataset", "fashion-mnist,cifar10", "-p", "data_root", str(tmp_path / "cifar"),
            *SMALL, "--name", "grid"]
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
    assert summary["finished"] == 2 and len(summary["combinations"]) == 1
    assert summary["combinations"][0]["setting"]["dataset"] == "fashion-mnist"
    assert {c["seeds"] for c in summary["combinations"][0]["checks"]} == {2}
    stamps = {p: p.stat().st_mtime_ns for p in folder.rglob("provenance.json")}
    again = sweep(tmp_path, *args, env=env)
    assert "2 done, 2 failed" in again.stdout  # only the failed jobs were tried again
    assert stamps == {p: p.stat().st_mtime_ns for p in folder.rglob("provenance.json")}
