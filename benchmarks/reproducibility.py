"""How many of the book's numbers depend on the machine: the experiment chapters run cold on "two machines".

    python benchmarks/reproducibility.py --out data/benchmarks/reproducibility.json [--chapters a,b] [--fast]

Each chapter runs through ``python -m flatrob run`` with its default parameters (``--fast``: the tests' small ones),
four times, each with an empty model cache, so that every model is trained anew:

* pinned kernels (``import flatrob``'s default), this machine as it is, 2 threads;
* pinned kernels, as another machine would compute: oneDNN and ATen limited to AVX2, 1 thread;
* the same two without the pins (``FLATROB_CPU_PINS=0``).

Per pair, the checks whose decisive value (or verdict) differs are counted. The result goes to ``--out`` with its
provenance; the book's page "Reproducibility on other machines" shows every ``data/benchmarks/reproducibility*.json``,
one per machine measured (``reproducibility.json``: the first, an AMD EPYC).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

CHAPTERS = ("uncanny-valley", "basin", "last-layer-scaling", "gradient-masking", "confidence-flatness", "detector")
EMULATED = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "OMP_NUM_THREADS": "1", "FLATROB_THREADS": "1"}
CONFIGS = {
    "pinned, this machine (2 threads)": {"FLATROB_THREADS": "2"},
    "pinned, AVX2 and 1 thread": EMULATED,
    "unpinned, this machine (2 threads)": {"FLATROB_CPU_PINS": "0", "FLATROB_THREADS": "2"},
    "unpinned, AVX2 and 1 thread": {"FLATROB_CPU_PINS": "0", **EMULATED},
}
PAIRS = (
    ("pinned, this machine (2 threads)", "pinned, AVX2 and 1 thread"),
    ("unpinned, this machine (2 threads)", "unpinned, AVX2 and 1 thread"),
    ("pinned, this machine (2 threads)", "unpinned, this machine (2 threads)"),
)


def run_all(config: str, extra_env: dict[str, str], chapters: list[str], out: Path, fast: bool) -> dict[str, list]:
    """Every chapter under one configuration, cold: {chapter: its checks}."""
    from flatrob.evidence.ledger import source_kind
    from helpers import FAST

    cache = out / "cache"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_CBWR", "OMP_NUM_THREADS")
    }
    env |= extra_env | {"FLATROB_CACHE": str(cache), "FLATROB_ROOT": str(ROOT)}
    env.pop("MPLBACKEND", None)
    found = {}
    for chapter in chapters:
        args = [a for k, v in (FAST[chapter].items() if fast else ()) for a in ("-p", k, json.dumps(v))]
        start = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "flatrob",
                "run",
                chapter,
                *args,
                "--out",
                str(out / "runs"),
                "--name",
                chapter,
                "--quiet",
                "--no-progress",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{config}: {chapter} failed: {proc.stderr[-1500:]}")
        checks = json.loads((out / "runs" / chapter / chapter / "checks.json").read_text())
        # only what this run computed: the committed sweeps' checks it carries are the same in every configuration
        found[chapter] = [c for c in checks if source_kind(c.get("setting", {})) == "live"]
        print(f"  {config}: {chapter} ({time.perf_counter() - start:.0f} s)", flush=True)
    return found


def compare(a: dict[str, list], b: dict[str, list]) -> dict[str, object]:
    """Checks of two configurations side by side: how many differ in their decisive value, in their verdict."""
    values = verdicts = total = 0
    drift = 0.0
    for chapter in a:
        theirs = {c["id"]: c for c in b[chapter]}
        for c in a[chapter]:
            other = theirs.get(c["id"])
            total += 1
            if other is None:
                values += 1
                verdicts += 1
                continue
            va = (c.get("measure") or {}).get("value")
            vb = (other.get("measure") or {}).get("value")
            if va != vb or c.get("values") != other.get("values"):
                values += 1
                if va is not None and vb is not None and max(abs(va), abs(vb)) > 0:
                    drift = max(drift, abs(va - vb) / max(abs(va), abs(vb)))
            verdicts += c["verdict"] != other["verdict"]
    return {"checks": total, "numbers differ": values, "verdicts differ": verdicts, "largest drift": drift}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--chapters", default=",".join(CHAPTERS))
    ap.add_argument("--fast", action="store_true", help="the tests' small parameters (a dry run of this script)")
    args = ap.parse_args()
    from flatrob.util.io import save_results
    from flatrob.util.provenance import provenance

    chapters = [c for c in args.chapters.split(",") if c]
    started = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory(prefix="reproducibility-") as tmp:
        for i, (config, env) in enumerate(CONFIGS.items()):
            results[config] = run_all(config, env, chapters, Path(tmp) / str(i), args.fast)
    comparisons = [{"machine A": a, "machine B": b, **compare(results[a], results[b])} for a, b in PAIRS]
    report = {
        "comparisons": comparisons,
        "chapters": chapters,
        "fast": args.fast,
        "seconds": round(time.perf_counter() - started, 1),
        "provenance": provenance({"fast": args.fast}),
    }
    save_results(args.out.parent, {args.out.name: report})
    print(json.dumps(comparisons, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
