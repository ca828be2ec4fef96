"""Command line: ``python -m flatrob run CHAPTER -p name value ...`` and ``python -m flatrob params CHAPTER``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flatrob.runs import ParameterError, chapter, chapters, parameter_defaults, parse_value, run_chapter


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m flatrob", description="Run the book's chapters as parameterised jobs.")
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute a chapter with parameters and store the run under data/runs/")
    run.add_argument("chapter", help="chapter name (see 'list')")
    run.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="a parameter (YAML value: 40, 0.5, true, [1, 2], text)")
    run.add_argument("--name", help="run folder name (default: UTC time and a hash of the parameters)")
    run.add_argument("--out", type=Path, help="root folder of runs (default: data/runs)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    sub.add_parser("list", help="the chapters that can be run")
    params = sub.add_parser("params", help="a chapter's parameters, defaults and constraints")
    params.add_argument("chapter")
    sub.add_parser("ledger", help="merge data/claims/*.json into data/claims.json and print the verdicts")
    args = ap.parse_args(argv)

    try:
        if args.command == "ledger":
            from flatrob.claims import build_ledger

            for e in build_ledger():
                print(f"claim {e['id']:2d}  {e['verdict']:18s} {e['statement']}")
            return 0
        if args.command == "list":
            for name, spec in chapters().items():
                print(f"{name:20s} book/{spec.path}")
            return 0
        if args.command == "params":
            spec = chapter(args.chapter)
            for pname, (default, comment) in parameter_defaults(args.chapter).items():
                c = spec.constraints.get(pname)
                extra = "" if c is None else "  " + ", ".join(f"{k}={v}" for k, v in vars(c).items() if v is not None)
                print(f"{pname:18s} = {default!r:22s} # {comment}{extra}")
            return 0
        names = [n for n, _ in args.param]
        if len(set(names)) != len(names):
            raise ParameterError(f"a parameter is given twice: {names}")
        overrides = {n: parse_value(v) for n, v in args.param}
        out = run_chapter(args.chapter, overrides, out_root=args.out, run_name=args.name, progress=not args.no_progress)
    except ParameterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"run stored in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
