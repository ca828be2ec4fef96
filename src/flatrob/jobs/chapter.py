"""What a chapter calls after its parameters cell: one set-up call, and a context that gives it its data, its
models, its attacks, the settings of its checks, and the one place where its results and verdicts go.

A chapter executed by ``python -m flatrob run`` finds its run through one channel, the environment variable
``FLATROB_RUN``: the run's folder, whose ``provenance.json`` (written once, by the runner, before the kernel
starts) holds the checked parameters, the device and everything else about the run. The chapter reads that record
instead of making a second one; executed any other way (the book build, papermill, Jupyter) it checks its own
parameters and makes its record itself.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from flatrob.evidence.checks.replay import CheckLog
from flatrob.evidence.records import Params, flag, integer, number, numbers, text, texts
from flatrob.evidence.verdicts import Check, Setting
from flatrob.jobs.params import parameter_spec, validate
from flatrob.jobs.run import RUN_ENV, Run
from flatrob.util.devices import fix_threads, resolve_device
from flatrob.util.progress import set_progress_default
from flatrob.util.provenance import Provenance, provenance, provenance_line, sweep_caption

if TYPE_CHECKING:
    from flatrob.attacks import AttackConfig, Norm
    from flatrob.data import Split
    from flatrob.evidence.records import ClaimRecord, LedgerEntry, RegimeCall, SweepResult
    from flatrob.models import FeatureClassifier
    from flatrob.training import TrainConfig, TrainingRecord

__all__ = ["ChapterContext", "SWEEP_JOB_NOTE", "setup_chapter"]

#: What a job of a sweep shows where the book's page shows the committed evidence (:attr:`ChapterContext.in_sweep`).
SWEEP_JOB_NOTE = (
    "This run is a job of a sweep: it measures and records its own checks. The committed evidence (the sweeps over "
    "seeds, the committed runs, the ledger's verdicts) is drawn on the book's page, not again in every job."
)


@dataclass
class ChapterContext:
    """A chapter's checked parameters, its device and its provenance record, and what it does with them."""

    name: str
    params: Params
    device: torch.device
    provenance: Provenance
    run: Run | None = None
    started: float = field(default_factory=time.perf_counter)
    log: CheckLog = field(default_factory=CheckLog)

    @property
    def in_sweep(self) -> bool:
        """Whether this run is a job of a sweep (:func:`flatrob.util.paths.is_sweep_job`): a job measures and records
        its own checks; the committed evidence (sweeps, runs, the ledger) is left to the book's page, which draws it
        once, instead of every job drawing it again."""
        from flatrob.util.paths import is_sweep_job

        return self.run is not None and is_sweep_job(self.run.folder)

    @property
    def caption(self) -> str:
        """The provenance line for figure captions: the parameters that differ from the chapter's defaults (all of
        them are in its parameter table), device, commit."""
        return provenance_line(self.provenance, self.defaults)

    @property
    def defaults(self) -> Params:
        """The chapter's parameters' defaults (:func:`flatrob.jobs.params.parameter_spec`)."""
        return {k: p.default for k, p in parameter_spec(self.name).items()}

    # -- data and models --------------------------------------------------------------------------------------

    def data(self) -> Split:
        """The chapter's data: ``dataset`` (from ``data_root`` for CIFAR), with ``n_train`` training images."""
        from flatrob.data import load_dataset, train_subset

        p, seed = self.params, integer(self.params["seed"])
        split = load_dataset(text(p["dataset"]), seed=seed, root=text(p.get("data_root") or "") or None)
        return train_subset(split, integer(p.get("n_train", 0)), seed)

    def inputs(self, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``n_samples`` test inputs the chapter attacks, drawn by its ``seed``
        (:func:`flatrob.data.test_inputs`)."""
        from flatrob.data import test_inputs

        return test_inputs(split, integer(self.params["n_samples"]), integer(self.params["seed"]))

    def train_config(self, adversarial: bool = False) -> TrainConfig:
        """The chapter's training recipe from its parameters; its adversarial ones only with ``adversarial``."""
        from flatrob.training import TrainConfig

        p, default = self.params, TrainConfig()
        config = TrainConfig(
            epochs=integer(p.get("epochs", default.epochs)),
            lr=number(p.get("lr", default.lr)),
            batch_size=integer(p.get("batch_size", default.batch_size)),
            seed=integer(p.get("seed", default.seed)),
            augment=flag(p.get("augment", default.augment)),
        )
        if not adversarial:
            return config
        return replace(
            config,
            adv_eps=number(p.get("adv_eps", default.adv_eps)),
            adv_steps=integer(p.get("adv_steps", default.adv_steps)),
            adv_step_size=number(p.get("adv_step_size", default.adv_step_size)),
        )

    def train(self, split: Split, adversarial: bool = False) -> tuple[FeatureClassifier, TrainingRecord]:
        """The chapter's model on ``split``, on its device: (model, record); the adversarially trained one where
        ``adversarial``. A committed model of the same recipe (:func:`flatrob.store.load`, hash checked) is used as
        it is; else it is trained, or taken from the cache."""
        from flatrob import store
        from flatrob.training import train_model

        config = self.train_config(adversarial=adversarial)
        architecture = text(self.params["architecture"])
        found = store.load(architecture, split, config, device=self.device)
        if found is not None:
            return found
        return train_model(architecture, split, config, device=self.device)

    def train_pair(self, split: Split) -> tuple[dict[str, FeatureClassifier], dict[str, TrainingRecord]]:
        """The clean and the adversarially trained model, the same recipe on clean inputs and adversarially (as
        :func:`flatrob.training.train_clean_and_adversarial` makes them): ({"clean": model, "adversarial": model},
        {name: record}); only those the chapter's ``trainings`` parameter names, where it has one. Each comes from
        :meth:`train` (a committed model of its recipe when there is one)."""
        models: dict[str, FeatureClassifier] = {}
        records: dict[str, TrainingRecord] = {}
        for name in texts(self.params.get("trainings", ["clean", "adversarial"])):
            models[name], records[name] = self.train(split, adversarial=name != "clean")
        return models, records

    # -- attacks and settings ---------------------------------------------------------------------------------

    def attack(self, prefix: str = "attack", norm: Norm | None = None) -> AttackConfig:
        """The chapter's attack from its parameters ``<prefix>_norm`` (or ``norm``), ``_eps``, ``_steps`` and
        ``_step_size``, seeded by ``seed``."""
        from flatrob.attacks import AttackConfig

        p = self.params
        norms: dict[str, Norm] = {"linf": "linf", "l2": "l2"}
        named = text(p.get(f"{prefix}_norm", "linf"))
        if named not in norms:
            raise ValueError(f"{prefix}_norm must be 'linf' or 'l2'; got {named!r}")
        return AttackConfig(
            norm or norms[named],
            number(p[f"{prefix}_eps"]),
            integer(p[f"{prefix}_steps"]),
            number(p[f"{prefix}_step_size"]),
            seed=integer(p["seed"]),
        )

    def attacks(self, prefix: str = "attack", norm: Norm | None = None) -> list[AttackConfig]:
        """The chapter's attack at its own radius, then at each of ``radii`` (:meth:`AttackConfig.at_radius`)."""
        base = self.attack(prefix, norm)
        return [base, *(base.at_radius(eps) for eps in numbers(self.params.get("radii", [])))]

    def setting(self, attack: AttackConfig | None = None, **extra: Any) -> Setting:
        """What made a check, as data: the chapter's data, model, training, inputs and seed, the attack's fields
        (:meth:`AttackConfig.setting`) and ``extra`` (``training="clean"``, ``variant=...``)."""
        p = self.params
        base = {
            "data": p.get("dataset"),
            "architecture": p.get("architecture"),
            "epochs": p.get("epochs"),
            "adv_eps": p.get("adv_eps"),
            "inputs": p.get("n_samples"),
            "seed": p.get("seed"),
            "source": "live",
        }
        out = {k: v for k, v in base.items() if v is not None}
        return out | (attack.setting() if attack is not None else {}) | extra

    # -- results ----------------------------------------------------------------------------------------------

    def save(self, files: Mapping[str, object]) -> list[Path]:
        """Write result files into the run's folder (nothing outside ``flatrob run``); see :func:`save_results`."""
        return self.run.save(dict(files)) if self.run is not None else []

    def judge(self, check: Any, *args: Any, **kwargs: Any) -> list[Check]:
        """Make a check (a ``check_*`` function of :mod:`flatrob.evidence.checks`) and log the call with its
        measurements, so that a later build can judge this run again by its own rules
        (:mod:`flatrob.evidence.checks.replay`)."""
        return self.log.judge(check, *args, **kwargs)

    def compare(self, check: Any, *args: Any, **kwargs: Any) -> list[Check]:
        """A check made only to be shown beside the evidence (another convention, a reading the book does not
        adopt): made like :meth:`judge`, but neither logged nor meant for the ledger. The one other way a chapter
        may make a check."""
        found = check(*args, **kwargs)
        return [found] if isinstance(found, Check) else list(found)

    def show_checks(self, checks: Sequence[Check]) -> None:
        """The checks as a table for the page: what was checked in which setting, the verdict, the paper's number
        and ours."""
        show_checks(checks)

    def over_seeds(self, live: Sequence[Check], source: str = "sweep", show: bool = True) -> list[Check]:
        """The chapter's committed sweeps over seeds, shown with their verdicts (unless ``show`` is False) and
        returned as checks for the ledger (their setting's source: "sweep <name>", or "study <name>" for a study
        beyond the paper's settings, which the report shows apart); where a sweep holds a run with this run's
        parameters (its seed included), the page says how the two relate (the same numbers, or which differ and
        why)."""
        from IPython.display import Markdown, display

        from flatrob.evidence.compare import twin_story
        from flatrob.evidence.seeds import committed_sweeps, sweep_checks

        if self.in_sweep:
            return []
        found = sweep_checks(self.name, kind=source)
        if not show:
            return found
        from flatrob.evidence.verdicts import OVER_SEEDS_RULE

        display(Markdown(OVER_SEEDS_RULE))
        if not found:
            display(Markdown("No sweep over seeds of this chapter is committed yet (see {ref}`sweeps`)."))
            return []
        show_checks(found)
        for sweep in committed_sweeps(self.name):
            twin = _same_run(sweep["dir"], self.name, self.params)
            if twin is not None:
                story = twin_story(twin.record, twin.checks(), live, self.provenance, sweep["summary"]["name"])
                display(Markdown(story))
        return found

    def overview(self) -> None:
        """The chapter's answer before its code: one sentence per claim it checks, from the committed ledger
        (:func:`flatrob.evidence.findings.findings`: the verdict at the paper's setting, its decisive measure with
        its interval, the paper's number), as Markdown; a line saying so where the ledger holds none yet."""
        from flatrob.evidence import findings

        if self.in_sweep:
            _markdown(SWEEP_JOB_NOTE)
            return
        text = findings.findings(_committed_claims(), chapter=self.name)
        _markdown(text or "The committed ledger holds no verdict of this chapter yet (see {ref}`reproduction`).")

    def parameters_table(self) -> None:
        """The chapter's parameters as a short table (:func:`flatrob.jobs.params.parameters_frame` of this run's
        values): name, this run's value, the default where it differs, and what each is and accepts."""
        from flatrob.jobs.params import parameters_frame
        from flatrob.tables import show

        show(
            parameters_frame(self.name, self.params),
            widths={"parameter": 0.18, "this run": 0.14, "default": 0.12, "what it is": 0.56},
        )

    def discussion(self, extra: Mapping[int, str] | None = None) -> None:
        """The chapter's closing discussion from the committed ledger (:func:`flatrob.evidence.findings.discussion`:
        what held, what did not and why, what differs from the paper), as Markdown; ``extra``: claim -> a computed
        sentence of the chapter's own, added to that claim's reason."""
        from flatrob.evidence import findings

        if not self.in_sweep:
            _markdown(findings.discussion(_committed_claims(), self.name, extra))

    def sweep_results(self, fname: str, chapter: str | None = None) -> list[SweepResult]:
        """A result file of every run of the chapter's committed sweeps: [{"sweep", "setting" (the combination's
        parameters but the seed), "seed", "run" (the run's record in the sweep), "data"}], where ``data`` is the file
        read (a ``.npz`` as a dict of arrays, a ``.json`` as its content, a ``.csv`` as a DataFrame); runs without
        the file are left out. ``chapter``: another chapter's sweeps (the landing page draws the valley's)."""

        from flatrob.evidence.seeds import committed_sweeps
        from flatrob.util.paths import sweep_job_dir

        name = chapter or self.name
        out: list[SweepResult] = []
        if self.in_sweep:
            return out
        for sweep in committed_sweeps(name, judged=False):  # which runs, not their verdicts
            for combo in sweep["summary"]["combinations"]:
                for run in combo["runs"]:  # the runs that count (summarize: those that recorded their measurements)
                    folder = Run(sweep_job_dir(sweep["dir"], name, run["job"]))
                    if not folder.path(fname).is_file():
                        continue
                    data = folder.read(fname)
                    out.append(
                        {
                            "sweep": sweep["summary"]["name"],
                            "setting": combo["setting"],
                            "seed": run["seed"],
                            "run": run,
                            "data": data,
                        }
                    )
        return out

    def paper_regime_results(self, fname: str, chapter: str | None = None) -> list[SweepResult]:
        """:meth:`sweep_results` of the first committed sweep in the paper's regime: a network of the paper's kind
        (:data:`flatrob.zoo.PAPER_KIND`) attacked with the chapter's own attack (no ``attack_*`` parameter and no
        ``radii`` changed: the uncanny-valley ladder's 20-step paths are not the paper's attack). Empty if none."""
        from flatrob.zoo import PAPER_KIND

        runs = [
            r
            for r in self.sweep_results(fname, chapter)
            if r["setting"].get("architecture") in PAPER_KIND
            and not any(k.startswith("attack_") or k == "radii" for k in r["setting"])
        ]
        return [r for r in runs if r["sweep"] == runs[0]["sweep"]] if runs else []

    def paper_regime_calls(self, check: str) -> list[RegimeCall]:
        """The measurements behind the paper-regime verdicts: every recorded call of ``check`` (a ``check_*``
        name) in the runs of the first committed sweep in the paper's regime (:meth:`paper_regime_results`), as
        {"sweep", "setting", "seed", "run", "args", "kwargs"}: a chapter draws its committed figure from them
        without re-running anything."""
        from flatrob.evidence.checks.replay import calls
        from flatrob.evidence.seeds import committed_sweeps
        from flatrob.util.paths import PROVENANCE, sweep_job_dir

        dirs = {s["summary"]["name"]: s["dir"] for s in committed_sweeps(self.name, judged=False)}
        out = []
        for r in self.paper_regime_results(PROVENANCE):
            folder = sweep_job_dir(dirs[r["sweep"]], self.name, r["run"]["job"])
            out += [cast("RegimeCall", {**r, "args": a, "kwargs": k}) for name, a, k in calls(folder) if name == check]
        return out

    def sweep_caption(self, results: Sequence[Mapping[str, object]], chapter: str | None = None) -> str:
        """The provenance line of a figure drawn from committed sweep results (:meth:`sweep_results`, non-empty):
        see :func:`flatrob.util.provenance.sweep_caption`, with the commit of this build as the one that drew it,
        and the parameters that differ from the defaults of the sweeps' chapter (``chapter``, else this one).
        """
        defaults = {k: p.default for k, p in parameter_spec(chapter).items()} if chapter else self.defaults
        return sweep_caption(results, str(self.provenance["commit"]), defaults, chapter)

    def larger_runs(self, draw: Any = None) -> list[Check]:
        """The chapter's committed runs (``flatrob run``, committed or promoted), shown with their provenance and
        verdicts, and returned as checks for the ledger (source "run <name>": the strongest evidence of their
        setting, judged again by this code from their recorded measurements). ``draw(name, data)``, where given,
        draws a run's figure from its result tables (``data``: file name -> DataFrame, and "caption": its
        provenance line)."""
        from IPython.display import Markdown, display

        if self.in_sweep:
            return []
        runs = Run.committed(self.name)
        if not runs:
            display(Markdown("No larger run of this chapter is committed yet."))
            return []
        out = []
        for run in runs:
            prov, p = run.record, run.params
            display(
                Markdown(
                    f"**Run `{run.name}`**: {p.get('dataset', '')}, {p.get('architecture', '')}, "
                    f"{p.get('epochs', '?')} epochs, {p.get('n_samples', '?')} inputs; {prov['device']}, "
                    f"commit `{prov['commit']}`, {prov.get('duration_s', '?')} s."
                )
            )
            if draw is not None:
                data: dict[str, object] = {f.name: run.read(f.name) for f in sorted(run.folder.glob("*.csv"))}
                draw(run.name, data | {"caption": provenance_line(prov)})
            found = run.checks()
            for c in found:
                c.setting = {**c.setting, "source": f"run {run.name}"}
                c.provenance = {**prov, "source": f"run {run.name}"}
            show_checks(found)
            out += found
        return out

    def record(self, checks: Sequence[Check]) -> list[LedgerEntry]:
        """The chapter's checks, to every place they go: this run's own checks (made by :meth:`judge`, setting
        source "live") to the run's ``checks.json`` (under ``flatrob run``), all of them, the committed sweeps' and
        runs' included, to this build's ledger (``_build/ledger/``, when the book is built with ``make book``) and to
        the page, where they are compared with the committed evidence
        (:func:`flatrob.evidence.compare.compare_chapter`). Returns the ledger entries.

        Raises:
            ValueError: a check of this run that was not made through :meth:`judge` (its measurements would not be
                logged, so no later build could judge it again).
        """
        from flatrob.evidence import compare, ledger

        own = [c for c in checks if c.setting.get("source", "live") == "live"]
        unlogged = [c for c in own if not self.log.logged(c)]
        if unlogged:
            raise ValueError(
                f"{unlogged[0].id}: a check of this run that was not made through ctx.judge cannot be recorded (no "
                "later build could judge its measurements again)"
            )
        if self.run is not None:
            self.run.save_checks(own, self.log)
        entries = [ledger.entry(c, self.name, self.provenance) for c in checks]
        ledger.record(self.name, entries, duration_s=round(time.perf_counter() - self.started, 1))
        if not self.in_sweep:
            compare.comparison_display(compare.compare_chapter(self.name, entries))
        return entries


def _committed_claims() -> list[ClaimRecord]:
    """The claims as the committed ledger judges them (:func:`flatrob.evidence.ledger.build`)."""
    from flatrob.evidence import ledger
    from flatrob.util.paths import claims_dir

    return ledger.build(ledger.load(claims_dir()))


def _markdown(text: str) -> None:
    from IPython.display import Markdown, display

    display(Markdown(text))


def show_checks(checks: Sequence[Check]) -> None:
    """A table of checks: the part checked and its setting in words, the verdict (and "fragile"), the paper's number
    and ours."""
    import pandas as pd

    from flatrob.evidence.ledger import setting_label
    from flatrob.evidence.report import paper_link
    from flatrob.tables import show

    if not checks:
        return
    show(
        pd.DataFrame(
            [
                {
                    "check": f"{c.claim}{'-' + c.part if c.part else ''} · {setting_label(c.setting)}",
                    "verdict": c.verdict + (" (fragile)" if c.fragile else ""),
                    "paper": paper_link(c.claim, c.paper, "../"),
                    "ours": c.evidence,
                }
                for c in checks
            ]
        ),
        widths={"check": 0.2, "verdict": 0.12, "paper": 0.18, "ours": 0.5},
    )
    from IPython.display import Markdown, display

    from flatrob.evidence.verdicts import define

    words = define([c.verdict + (" (fragile)" if c.fragile else "") for c in checks])
    if words:
        display(Markdown(words))


def _same_run(sweep_dir: Path, chapter: str, params: Mapping[str, object]) -> Run | None:
    """The run of a committed sweep made with exactly these parameters, if there is one."""
    from flatrob.util.paths import PROVENANCE, run_dirs, sweep_runs_dir

    for folder in run_dirs(sweep_runs_dir(sweep_dir, chapter)):
        if (folder / PROVENANCE).is_file() and Run(folder).params == dict(params):
            return Run(folder)
    return None


def _current_run(name: str, namespace: Mapping[str, object]) -> Run | None:
    """The run that ``flatrob run`` made for this kernel (:meth:`Run.current`), after checking that it is this
    chapter's and that the kernel holds its values."""
    run = Run.current()
    if run is None:
        return None
    if run.chapter != name:
        raise RuntimeError(f"{RUN_ENV} names a run of chapter {run.chapter!r}, not {name!r}")
    differ = [k for k in parameter_spec(name) if k in namespace and namespace[k] != run.params[k]]
    if differ:
        raise RuntimeError(f"the kernel's parameters {differ} differ from the run record in {run.folder}")
    return run


def setup_chapter(name: str, namespace: MutableMapping[str, object]) -> ChapterContext:
    """The one call after a chapter's parameters cell: its parameters checked, its thread count fixed, the figure
    style set, its device resolved and its provenance record made (or, under ``flatrob run``, read).

    ``namespace`` is the chapter's ``globals()``: the checked, typed values replace the ones the parameters cell or
    papermill put there (``-p epochs 1e3`` leaves the integer 1000, not the float, for the cells that follow), through
    this one channel.
    """
    from flatrob.plotting import setup

    fix_threads()
    setup()
    run = _current_run(name, namespace)
    if run is not None:
        set_progress_default(run.record.get("progress", False))
        namespace.update({k: v for k, v in run.params.items() if k in parameter_spec(name)})
        return ChapterContext(name, run.params, torch.device(run.record["device_type"]), run.record, run)
    params = validate(name, {k: namespace[k] for k in parameter_spec(name) if k in namespace})
    namespace.update(params)
    device = resolve_device(text(params["device"])) if "device" in params else torch.device("cpu")
    return ChapterContext(name, params, device, provenance(params, device))
