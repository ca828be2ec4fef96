"""Trained models committed as evidence: the weights behind committed verdicts, with their recipe, hash and provenance.

A sweep of the paper's regime trains its networks for hours on two cores; the verdicts it made are re-judged by
every build from the measurements it recorded, but a reader who wants to measure something new on the same networks
needs the networks. ``data/models/`` holds them: one ``.pt`` file per model (its ``state_dict``) and ``manifest.json``,
which gives each file's recipe (architecture, data set, training configuration, the hash of its initial parameters
and of its training data), its SHA-256 and what made it (commit, machine, threads, the training code's fingerprint,
the test accuracy). A chapter asks :func:`load` before it trains (:meth:`flatrob.jobs.chapter.ChapterContext.train`):
when a committed model has the same recipe and its file the recorded hash, it is used; otherwise the model is trained
(or taken from the cache) as before. The recipe deliberately leaves out the training code's fingerprint, which the
cache's key includes: a committed model stays usable when unrelated code changes, and its record says which code
trained it. ``python -m flatrob models add`` commits the models of a finished run or sweep.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import torch

from flatrob.data import Split
from flatrob.models import FeatureClassifier
from flatrob.training import CommittedModel, TrainConfig, TrainingRecord, accuracy
from flatrob.util.devices import default_device
from flatrob.util.io import atomic_write_text
from flatrob.util.paths import MODELS_MANIFEST, models_dir
from flatrob.zoo import build_model

__all__ = ["MANIFEST_FORMAT", "add", "add_from_sweep", "load", "manifest", "recipe", "sha256"]

#: The layout of ``manifest.json``; another version is refused with a message.
MANIFEST_FORMAT = 1


def sha256(path: Path) -> str:
    """The SHA-256 of a file, in hex.

    Args:
        path: a file.

    Returns:
        Its SHA-256, in hex.
    """
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def recipe(architecture: str, split: Split, config: TrainConfig) -> tuple[str, dict[str, Any]]:
    """What makes a trained model, as data, and its key: the architecture, the data set's name, the training
    configuration, the hash of the initial parameters (the architecture built after ``torch.manual_seed(config.seed)``,
    as :func:`flatrob.training.train_model` builds it) and the hash of the training images and labels.

    Args:
        architecture: a name of :data:`flatrob.zoo.ARCHITECTURES`.
        split: the data set the model trains on.
        config: the training recipe.

    Returns:
        The pair (key, recipe), a 16-hex-digit key and the recipe it hashes.
    """
    torch.manual_seed(config.seed)
    model = build_model(architecture, split.n_classes, split.input_shape)
    init = hashlib.sha256()
    for t in model.state_dict().values():
        init.update(t.detach().cpu().contiguous().numpy().tobytes())
    data = hashlib.sha256(split.x_train.numpy().tobytes() + split.y_train.numpy().tobytes()).hexdigest()
    found = {
        "architecture": architecture,
        "data": split.name,
        "config": config.as_dict(),
        "init": init.hexdigest(),
        "train_data": data,
    }
    return hashlib.sha256(json.dumps(found, sort_keys=True).encode()).hexdigest()[:16], found


def manifest(root: Path | None = None) -> dict[str, Any]:
    """``data/models/manifest.json`` ({"format", "models": {file name: entry}}), empty when there is none.

    Args:
        root: the repository (default: this one).

    Returns:
        The manifest (its format and the models by file name); empty when there is none.
    """
    path = models_dir(root) / MODELS_MANIFEST
    if not path.is_file():
        return {"format": MANIFEST_FORMAT, "models": {}}
    doc: dict[str, Any] = json.loads(path.read_text())
    if doc.get("format") != MANIFEST_FORMAT:
        raise RuntimeError(f"{path} has format {doc.get('format')!r}; this code reads format {MANIFEST_FORMAT}")
    return doc


def load(
    architecture: str,
    split: Split,
    config: TrainConfig,
    *,
    device: torch.device | None = None,
    root: Path | None = None,
) -> tuple[FeatureClassifier, TrainingRecord] | None:
    """The committed model of this recipe, or None when none is committed.

    Raises when a committed file's hash differs from the manifest's (an altered or truncated file is never used).

    Args:
        architecture, split, config: the recipe (:func:`recipe`).
        device: where to put the model.
        root: the repository (default: the one the user runs in).

    Returns:
        (model in eval mode, record) with the record as :func:`flatrob.training.train_model` gives it (history, test
        accuracy) and ``committed``: the file, its hash and what made it.
    """
    key, _ = recipe(architecture, split, config)
    name = f"{split.name}-{architecture}-{key}.pt"
    entry = manifest(root)["models"].get(name)
    if entry is None:
        return None
    path = models_dir(root) / name
    if not path.is_file() or sha256(path) != entry["sha256"]:
        raise RuntimeError(f"committed model {path} is missing or does not have the SHA-256 its manifest records")
    torch.manual_seed(config.seed)
    model = build_model(architecture, split.n_classes, split.input_shape)
    model.load_state_dict(torch.load(path, weights_only=True))
    model.to(device or default_device()).eval()
    committed: CommittedModel = {"file": name, "sha256": entry["sha256"]}
    if "provenance" in entry:
        committed["provenance"] = entry["provenance"]
    record: TrainingRecord = {
        "key": key,
        "path": str(path),
        "history": entry.get("history", []),
        "cached": True,
        "committed": committed,
        "test_accuracy": accuracy(model, split.x_test, split.y_test),
    }
    return model, record


def add(
    model: FeatureClassifier,
    architecture: str,
    split: Split,
    config: TrainConfig,
    provenance: dict[str, Any],
    history: list[dict[str, Any]] | None = None,
    root: Path | None = None,
) -> Path:
    """Commit a trained model: its ``state_dict`` as ``data/models/<data>-<architecture>-<key>.pt`` and its entry in
    the manifest (recipe, SHA-256, provenance, training history, test accuracy). Returns the file's path.

    Args:
        model: the trained model.
        architecture: its name in :data:`flatrob.zoo.ARCHITECTURES`.
        split: the data it was trained on.
        config: its recipe.
        provenance: what made it (commit, machine, time).
        history: its training history per epoch.
        root: the repository (default: this one).

    Returns:
        The path of the model's file under ``data/models/``.
    """
    key, found = recipe(architecture, split, config)
    folder = models_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{split.name}-{architecture}-{key}.pt"
    tmp = folder / f".{name}.tmp"
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    shutil.move(tmp, folder / name)
    doc = manifest(root)
    doc["models"][name] = {
        "recipe": found,
        "sha256": sha256(folder / name),
        "bytes": (folder / name).stat().st_size,
        "test_accuracy": accuracy(model, split.x_test, split.y_test),
        "history": history or [],
        "provenance": provenance,
    }
    doc["models"] = dict(sorted(doc["models"].items()))
    atomic_write_text(folder / MODELS_MANIFEST, json.dumps(doc, indent=2) + "\n")
    return folder / name


def add_from_sweep(sweep: Path, root: Path | None = None) -> list[Path]:
    """Commit the models of every finished run of a sweep (``python -m flatrob models add data/sweeps/<name>``).

    Each run's recipe is rebuilt from its recorded parameters (data set, ``n_train``, seed, training parameters, the
    ``trainings`` it trained: the clean model, and the adversarially trained one where the run made it); the model is
    taken from the cache (:func:`flatrob.training.train_model`; where it is not cached it is trained again, which the
    line printed for it says); a model already committed (which the run loaded from here) is left as it is. Its
    provenance is the run's (commit, machine, device, threads, time) and the sweep's name and job. Returns the
    committed files.

    Args:
        sweep: a sweep's folder (``data/sweeps/<name>``).
        root: the repository (default: this one).

    Returns:
        The paths of the model files written (a model already committed is left as it is).
    """
    from dataclasses import fields

    from flatrob.data import load_dataset, train_subset
    from flatrob.training import describe, train_model
    from flatrob.util.paths import GRID, PROVENANCE, sweep_job_dir

    spec = json.loads((sweep / GRID).read_text())
    known = {f.name for f in fields(TrainConfig)}
    out = []
    for job in spec["jobs"]:
        run = sweep_job_dir(sweep, spec["chapter"], job["id"])
        if not (run / PROVENANCE).is_file():
            continue
        prov = json.loads((run / PROVENANCE).read_text())
        p = prov["params"]
        split = train_subset(load_dataset(p["dataset"], seed=p["seed"]), p.get("n_train", 0), p["seed"])
        for training in p.get("trainings", ["clean", "adversarial"]):
            keys = ["epochs", "lr", "batch_size", "seed", "augment"]
            if training == "adversarial":
                keys += ["adv_eps", "adv_steps", "adv_step_size"]
            config = TrainConfig(**{k: p[k] for k in keys if k in p and k in known})
            if load(p["architecture"], split, config, root=root) is not None:  # the run loaded it from here
                print(f"{spec['name']} seed {p['seed']} {training}: already committed")
                continue
            model, record = train_model(p["architecture"], split, config, device=torch.device("cpu"))
            print(f"{spec['name']} seed {p['seed']} {training}: {describe(record)}")
            made = {k: prov.get(k) for k in ("commit", "time_utc", "device", "machine", "threads", "duration_s")}
            made |= {"sweep": spec["name"], "job": job["id"], "training": training}
            out.append(add(model, p["architecture"], split, config, made, record.get("history"), root))
    return out
