"""The benchmark scripts still run (tiny sizes; their timings are not asserted, only that they measure and write)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "script, args",
    [
        ("bench_bootstrap.py", ["--sizes", "50", "--repeat", "1"]),
        ("bench_flatness.py", ["--m", "16", "--k", "3", "--n", "4", "--repeat", "1"]),
        ("bench_forward.py", ["--sizes", "8x16x3", "--budget", "0.2"]),
        ("bench_pgd.py", ["--batch", "4", "--steps", "2", "--repeat", "1"]),
        ("bench_pgd.py", ["--arch", "wrn-10-1", "--batch", "2", "--steps", "2", "--repeat", "1"]),
        ("bench_training.py", ["--images", "64", "--batch", "32", "--repeat", "1", "--archs", "wrn-10-1"]),
    ],
)
def test_benchmark_runs_and_writes_its_results(tmp_path, script, args):
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args, "--device", "cpu", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["provenance"]["machine"]["cpu"]  # figures of one machine, named as such
