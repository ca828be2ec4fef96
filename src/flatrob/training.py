"""Training: the paper's recipe (SGD, momentum 0.9, cosine schedule, weight decay 1e-4), optional
PGD adversarial training, and checkpoints that are reused when they match and resumed when interrupted."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

import torch
from torch import Tensor, nn

from flatrob import checkpoints
from flatrob.attacks import AttackConfig, pgd
from flatrob.data import load_digits
from flatrob.models import DigitsCNN, FeatureClassifier, on_model
from flatrob.util.devices import default_device
from flatrob.util.paths import model_cache_dir
from flatrob.util.progress import progress_bar, progress_enabled
from flatrob.zoo import build_model

if TYPE_CHECKING:
    from flatrob.data import Split

__all__ = [
    "CommittedModel",
    "TrainConfig",
    "TrainingRecord",
    "accuracy",
    "describe",
    "fit_or_load",
    "predict_logits",
    "train",
    "train_model",
    "train_clean_and_adversarial",
    "trained_digits_cnn",
]


class CommittedModel(TypedDict):
    """Where a committed model came from (:func:`flatrob.store.load`): its file in ``data/models``, its SHA-256 and
    the provenance of the run that trained it, as the manifest records them."""

    file: str
    sha256: NotRequired[str]
    provenance: NotRequired[Mapping[str, object]]


class TrainingRecord(TypedDict):
    """How a model was made (:func:`fit_or_load`, :func:`train_model`, :func:`flatrob.store.load`): its cache key
    and file, one entry per epoch (epoch, mean training loss, training accuracy), whether it came from the cache,
    the epoch a training resumed from, its test accuracy and, for a committed model, where it came from
    (:func:`describe` says it in words)."""

    key: str
    path: str
    history: list[dict[str, float]]
    cached: bool
    resumed_from_epoch: NotRequired[int]
    test_accuracy: NotRequired[float]
    committed: NotRequired[CommittedModel]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of :func:`train`. Defaults are the paper's recipe except epochs, lr and batch size.

    ``adv_eps > 0`` turns on PGD-l_inf adversarial training (Madry et al.): each
    batch is replaced by its PGD adversarial examples (``adv_steps`` steps of
    ``adv_step_size``, random start). ``augment`` adds random crops (padding 4)
    and horizontal flips, for 32x32 images.
    """

    epochs: int = 30
    lr: float = 0.05
    batch_size: int = 64
    momentum: float = 0.9
    weight_decay: float = 1e-4
    seed: int = 0
    augment: bool = False
    adv_eps: float = 0.0
    adv_steps: int = 10
    adv_step_size: float = 2 / 255

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "adv_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0; got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1); got {self.momentum}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0; got {self.weight_decay}")
        if self.adv_eps < 0 or not self.adv_step_size > 0:
            raise ValueError(f"adv_eps must be >= 0 and adv_step_size > 0; got {self.adv_eps}, {self.adv_step_size}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _augment(x: Tensor, gen: torch.Generator) -> Tensor:
    """Random crop with zero padding 4 and random horizontal flip, for (n, c, h, w) images."""
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (4, 4, 4, 4))
    dx, dy = torch.randint(0, 9, (n,), generator=gen), torch.randint(0, 9, (n,), generator=gen)
    out = torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
    flip = (torch.rand(n, generator=gen) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], out.flip(-1), out)


def _duration(seconds: float) -> str:
    """A duration in words: ``40 s``, ``12 min``, ``2.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _epoch(
    model: FeatureClassifier,
    x: Tensor,
    y: Tensor,
    config: TrainConfig,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    gen: torch.Generator,
    attack: AttackConfig | None,
    device: torch.device,
) -> tuple[float, float]:
    """One epoch of :func:`train` in the order ``gen`` shuffles (mini-batches augmented and, with ``attack``,
    replaced by their PGD examples): (mean training loss, training accuracy)."""
    loss_fn = nn.CrossEntropyLoss()
    order = torch.randperm(len(y), generator=gen)
    total, correct = 0.0, 0
    for start in range(0, len(y), config.batch_size):
        idx = order[start : start + config.batch_size]
        xb, yb = x[idx].to(device), y[idx].to(device)
        if config.augment:
            xb = _augment(xb, gen)
        if attack is not None:
            seeded = AttackConfig(**(attack.as_dict() | {"seed": int(torch.randint(0, 2**31 - 1, (), generator=gen))}))
            xb = pgd(model, xb, yb, seeded)  # eval mode for the attack
            model.train()
        logits = model(xb)
        loss = loss_fn(logits, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total += loss.item() * len(idx)
        hard = yb.argmax(-1) if yb.dim() > 1 else yb  # soft targets (n, k): their arg-max
        correct += int((logits.argmax(-1) == hard).sum())
    return total / len(y), correct / len(y)


def train(
    model: FeatureClassifier,
    x: Tensor,
    y: Tensor,
    config: TrainConfig = TrainConfig(),
    *,
    device: torch.device | None = None,
    progress: bool | None = None,
    checkpoint: Path | None = None,
) -> list[dict[str, float]]:
    """Train a model in place with SGD, momentum, weight decay and a cosine schedule (the paper's recipe).

    Shuffling and augmentation are seeded by ``config.seed``. With ``checkpoint``, the full state (model,
    optimiser, schedule, random generator, history) is written atomically after every epoch, the one before kept
    beside it (``*.prev.pt``), and a run that finds one resumes after its last completed epoch: an interrupted
    training loses at most the epoch in progress and ends with the same weights. An unreadable checkpoint is named,
    set aside, and the previous one used (or none).

    Args:
        model: the classifier, trained in place and left in eval mode.
        x: training inputs, shape (n, ...).
        y: labels, shape (n,), or soft targets, shape (n, k).
        config: the recipe (epochs, learning rate, batch size, seed, augmentation, adversarial training).
        device: where to train (default: CUDA when present).
        progress: a bar per epoch on standard error (None: the run's default).
        checkpoint: the file of the resumable state.

    Returns:
        One record per epoch (epoch, mean training loss, training accuracy).
    """
    device = device or default_device()
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    steps_per_epoch = -(-len(y) // config.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(config.seed)
    history = checkpoints.restore(checkpoint, model, opt, sched, gen)
    model.to(device)
    attack = None
    if config.adv_eps > 0:
        attack = AttackConfig("linf", config.adv_eps, config.adv_steps, config.adv_step_size, random_start=True)
    if history and progress_enabled(progress):
        print(f"resumed from epoch {len(history)} of {config.epochs}", file=sys.stderr)
    bar = progress_bar(
        range(len(history), config.epochs),
        progress=progress,
        desc="train",
        unit="epoch",
        initial=len(history),
        total=config.epochs,
    )
    clock, first = time.perf_counter(), len(history)
    for epoch in bar:
        loss, acc = _epoch(model, x, y, config, opt, sched, gen, attack, device)
        history.append({"epoch": epoch + 1, "loss": loss, "accuracy": acc})
        if epoch == first and progress_enabled(progress) and epoch + 1 < config.epochs:
            took = time.perf_counter() - clock
            print(
                f"epoch {epoch + 1} of {config.epochs} took {took:.0f} s: the training will take about "
                f"{_duration(took * (config.epochs - epoch - 1))} more",
                file=sys.stderr,
            )
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.3f}", refresh=False)
        if checkpoint is not None:
            checkpoints.store(checkpoint, model, opt, sched, gen, history)
    model.eval()
    return history


@torch.no_grad()
def predict_logits(model: nn.Module, x: Tensor, batch_size: int = 1024) -> Tensor:
    """Logits (n, k) of inputs x (n, ...) on any device, computed on the model's device in eval mode; on the CPU.

    Args:
        model: a classifier.
        x: inputs, shape (n, ...), on any device.
        batch_size: inputs per forward pass.

    Returns:
        The logits, shape (n, k), on the CPU.
    """
    model.eval()
    return torch.cat([model(*on_model(model, x[i : i + batch_size])).cpu() for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Fraction of correctly classified samples; x (n, ...) and y (n,) on any device.

    Args:
        model: a classifier.
        x: inputs, shape (n, ...), on any device.
        y: labels, shape (n,).

    Returns:
        The share of inputs classified correctly, in [0, 1].
    """
    return float((predict_logits(model, x).argmax(-1) == y.cpu()).double().mean())


# ---------------------------------------------------------------------------
# trained models, cached by what made them


def _code_fingerprint() -> str:
    """Hash of the modules that determine a trained model (data, models, zoo, training, attacks, flatness), without
    their import lines: where a helper such as the progress bar lives does not change a model, what the code does
    does."""
    h = hashlib.sha256()
    for name in ("data.py", "manifold.py", "models.py", "zoo.py", "training.py", "attacks.py", "flatness.py"):
        lines = Path(__file__).with_name(name).read_text().splitlines()
        h.update("\n".join(ln for ln in lines if not ln.lstrip().startswith(("import ", "from "))).encode())
    return h.hexdigest()[:12]


def fit_or_load(
    model: FeatureClassifier,
    name: str,
    x: Tensor,
    y: Tensor,
    config: TrainConfig = TrainConfig(),
    *,
    device: torch.device | None = None,
    progress: bool | None = None,
) -> tuple[FeatureClassifier, TrainingRecord]:
    """Train a freshly initialised model, or load the cached result of the same training.

    The cache key is ``name`` (which must identify the architecture and data), the training config, the model's
    initial parameters, a hash of the data and a hash of the library code that trains: any change trains anew. A
    training in progress keeps a resumable checkpoint (``*.partial.pt``) beside the final one; an unreadable cached
    model is named, set aside and trained anew.

    Args:
        model: the model, as the caller initialised it.
        name: names the architecture and data in the cache.
        x: training inputs, shape (n, ...).
        y: labels, shape (n,).
        config: the recipe (:class:`TrainConfig`).
        device: where to train and put the model.
        progress: a bar per epoch (None: the run's default).

    Returns:
        ``(model, record)``, the model in eval mode on ``device`` and the record of its training (key, path,
        history, whether it came from the cache, the epoch a training resumed from; ``describe`` says it in
        words).
    """
    init = hashlib.sha256()
    for t in model.state_dict().values():
        init.update(t.detach().cpu().contiguous().numpy().tobytes())
    key_src = json.dumps(
        {
            "name": name,
            "config": config.as_dict(),
            "init": init.hexdigest(),
            "code": _code_fingerprint(),
            "data": hashlib.sha256(x.numpy().tobytes() + y.numpy().tobytes()).hexdigest(),
        },
        sort_keys=True,
    )
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    path = model_cache_dir() / f"{name}-{key}.pt"
    partial = path.with_suffix(".partial.pt")
    device = device or default_device()
    blob = checkpoints.load(path, "cached model", weights_only=True)
    if blob is not None:
        try:
            model.load_state_dict(blob["state_dict"])
            model.to(device).eval()
            return model, {"key": key, "path": str(path), "history": json.loads(blob["history"]), "cached": True}
        except (KeyError, RuntimeError, TypeError, ValueError) as err:
            checkpoints.set_aside(path, err, "cached model")
    resumed_from = checkpoints.resume_point(partial)
    history = train(model, x, y, config, device=device, progress=progress, checkpoint=partial)
    checkpoints.save({"state_dict": model.state_dict(), "history": json.dumps(history)}, path)
    partial.unlink(missing_ok=True)
    checkpoints.previous(partial).unlink(missing_ok=True)
    return model, {
        "key": key,
        "path": str(path),
        "history": history,
        "cached": False,
        "resumed_from_epoch": resumed_from,
    }


def describe(record: TrainingRecord) -> str:
    """Where a model of :func:`fit_or_load` (or ``flatrob.store.load``) came from, in words.

    Args:
        record: the record :func:`fit_or_load` (or ``flatrob.store.load``) returns with a model.

    Returns:
        Where the model came from, in words, "from the committed models (file)", "from the cache", "trained now"
        or "resumed from epoch N, trained now".
    """
    if record.get("committed"):
        return f"from the committed models ({record['committed']['file']})"
    if record.get("cached"):
        return "from the cache"
    n = record.get("resumed_from_epoch", 0)
    return f"resumed from epoch {n}, trained now" if n else "trained now"


def train_model(
    architecture: str,
    split: Split,
    config: TrainConfig,
    *,
    device: torch.device | None = None,
    progress: bool | None = None,
) -> tuple[FeatureClassifier, TrainingRecord]:
    """Build an architecture for a data set (initialisation seeded by ``config.seed``) and fit or load it.

    Args:
        architecture: a name of :data:`flatrob.zoo.ARCHITECTURES`.
        split: the data set.
        config: the recipe (:class:`TrainConfig`).
        device: where to train and put the model.
        progress: a bar per epoch (None: the run's default).

    Returns:
        ``(model, record)`` as :func:`fit_or_load` gives them, the record with the test accuracy.
    """
    torch.manual_seed(config.seed)
    model = build_model(architecture, split.n_classes, split.input_shape)
    model, record = fit_or_load(
        model, f"{split.name}-{architecture}", split.x_train, split.y_train, config, device=device, progress=progress
    )
    record["test_accuracy"] = accuracy(model, split.x_test, split.y_test)
    return model, record


def train_clean_and_adversarial(
    architecture: str,
    split: Split,
    config: TrainConfig,
    *,
    device: torch.device | None = None,
    progress: bool | None = None,
) -> tuple[dict[str, FeatureClassifier], dict[str, TrainingRecord]]:
    """The experiment chapters' pair of models: the same recipe on clean inputs and adversarially.

    The clean model uses the same config with ``adv_eps = 0``.

    Args:
        architecture: a name of :data:`flatrob.zoo.ARCHITECTURES`.
        split: the data.
        config: the recipe, with the adversarial settings (``adv_eps`` > 0).
        device: where to train (default: the best available).
        progress: show progress bars (default: on a terminal).

    Returns:
        The two models by name (clean, adversarial) and their records by name, both cached by :func:`fit_or_load`.
    """
    if not config.adv_eps > 0:
        raise ValueError(f"config.adv_eps must be > 0 for the adversarially trained model; got {config.adv_eps}")
    plain = TrainConfig()  # the clean model's adversarial fields at their defaults: one cache entry per recipe
    clean = replace(config, adv_eps=0.0, adv_steps=plain.adv_steps, adv_step_size=plain.adv_step_size)
    configs = {"clean": clean, "adversarial": config}
    models, records = {}, {}
    for name, cfg in configs.items():
        models[name], records[name] = train_model(architecture, split, cfg, device=device, progress=progress)
    return models, records


def trained_digits_cnn(
    seed: int = 0,
    epochs: int = 30,
    lr: float = 0.05,
    batch_size: int = 64,
    channels: int = 16,
    width: int = 64,
    *,
    device: torch.device | None = None,
    progress: bool | None = None,
) -> tuple[FeatureClassifier, Split, TrainingRecord]:
    """The theory chapters' reference network: ``DigitsCNN`` trained on scikit-learn's digits.

    The result is cached (:func:`fit_or_load`).

    Args:
        seed: seeds the initialisation, split and shuffling.
        epochs: training epochs.
        lr: peak learning rate.
        batch_size: inputs per step.
        channels: convolution channels.
        width: m, the number of features.
        device: where to train.
        progress: show progress bars.

    Returns:
        The trained ``DigitsCNN``, scikit-learn's digits and the
        training record.
    """
    split = load_digits(seed=seed)
    torch.manual_seed(seed)
    fresh = DigitsCNN(n_classes=split.n_classes, channels=channels, width=width)
    config = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
    model, record = fit_or_load(
        fresh,
        f"digits-cnn-c{channels}-w{width}",
        split.x_train,
        split.y_train,
        config,
        device=device,
        progress=progress,
    )
    record["test_accuracy"] = accuracy(model, split.x_test, split.y_test)
    return model, split, record
