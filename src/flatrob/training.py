"""Training recipe of the paper (SGD, momentum 0.9, cosine schedule, weight decay 1e-4)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

if TYPE_CHECKING:
    from flatrob.data import Split

__all__ = [
    "TrainConfig",
    "accuracy",
    "cache_dir",
    "default_device",
    "fit_or_load",
    "predict_logits",
    "train",
    "trained_digits_cnn",
]


def default_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of :func:`train`. Defaults are the paper's recipe except epochs, lr and batch size."""

    epochs: int = 30
    lr: float = 0.05
    batch_size: int = 64
    momentum: float = 0.9
    weight_decay: float = 1e-4
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0; got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1); got {self.momentum}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0; got {self.weight_decay}")

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def train(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    config: TrainConfig = TrainConfig(),
    *,
    device: torch.device | None = None,
    progress: bool = True,
) -> list[dict[str, float]]:
    """Train ``model`` in place with SGD + cosine schedule on (x (n, ...), y (n,)).

    Shuffling is seeded by ``config.seed``. Returns one record per epoch
    (epoch, mean training loss, training accuracy).
    """
    device = device or default_device()
    model.to(device).train()
    opt = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    steps_per_epoch = -(-len(y) // config.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(config.seed)
    loss_fn = nn.CrossEntropyLoss()
    history = []
    for epoch in tqdm(range(config.epochs), desc="train", disable=not progress):
        order = torch.randperm(len(y), generator=gen)
        total, correct = 0.0, 0
        for start in range(0, len(y), config.batch_size):
            idx = order[start : start + config.batch_size]
            xb, yb = x[idx].to(device), y[idx].to(device)
            logits = model(xb)
            loss = loss_fn(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            correct += int((logits.argmax(-1) == yb).sum())
        history.append({"epoch": epoch + 1, "loss": total / len(y), "accuracy": correct / len(y)})
    model.eval()
    return history


@torch.no_grad()
def predict_logits(model: nn.Module, x: Tensor, batch_size: int = 1024) -> Tensor:
    """Logits (n, k) on the model's device, in eval mode, returned on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model(x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Fraction of correctly classified samples."""
    return float((predict_logits(model, x).argmax(-1) == y).double().mean())


# ---------------------------------------------------------------------------
# trained models, cached by what made them


def _code_fingerprint() -> str:
    """Hash of the modules that determine a trained model (data, models, training)."""
    import hashlib

    h = hashlib.sha256()
    for name in ("data.py", "models.py", "training.py"):
        h.update((Path(__file__).with_name(name)).read_bytes())
    return h.hexdigest()[:12]


def cache_dir() -> Path:
    """Folder of cached checkpoints: ``$FLATROB_CACHE`` or ``<repo>/cache``."""
    import os

    from flatrob.runs import repo_root

    return Path(os.environ.get("FLATROB_CACHE", repo_root() / "cache"))


def fit_or_load(
    model: nn.Module,
    name: str,
    x: Tensor,
    y: Tensor,
    config: TrainConfig = TrainConfig(),
    *,
    device: torch.device | None = None,
    progress: bool = True,
) -> tuple[nn.Module, dict]:
    """Train ``model`` (freshly initialised by the caller) or load the cached result of the same training.

    The cache key is ``name`` (which must identify the architecture and data), the
    training config, the model's initial parameters and a hash of the code in
    data.py, models.py and training.py: any change in them trains anew. The
    checkpoint is written atomically. Returns (model in eval mode, record) where
    the record holds the key, the history and whether it came from the cache.
    """
    import hashlib
    import json
    import os

    init = hashlib.sha256()
    for t in model.state_dict().values():
        init.update(t.detach().cpu().contiguous().numpy().tobytes())
    key_src = json.dumps(
        {"name": name, "config": config.as_dict(), "init": init.hexdigest(), "code": _code_fingerprint(),
         "data": hashlib.sha256(x.numpy().tobytes() + y.numpy().tobytes()).hexdigest()},
        sort_keys=True,
    )
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    path = cache_dir() / "models" / f"{name}-{key}.pt"
    device = device or default_device()
    if path.exists():
        blob = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(blob["state_dict"])
        model.to(device).eval()
        return model, {"key": key, "path": str(path), "history": json.loads(blob["history"]), "cached": True}
    history = train(model, x, y, config, device=device, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save({"state_dict": model.state_dict(), "history": json.dumps(history)}, tmp)
    os.replace(tmp, path)
    return model, {"key": key, "path": str(path), "history": history, "cached": False}


def trained_digits_cnn(
    seed: int = 0,
    epochs: int = 30,
    lr: float = 0.05,
    batch_size: int = 64,
    channels: int = 16,
    width: int = 64,
    *,
    device: torch.device | None = None,
    progress: bool = False,
) -> tuple[nn.Module, Split, dict]:
    """The book's reference network: :class:`~flatrob.models.DigitsCNN` trained on scikit-learn's digits.

    Initialisation, split and shuffling are seeded by ``seed``; the result is cached
    (:func:`fit_or_load`). Returns (model, split, record).
    """
    from flatrob.data import load_digits
    from flatrob.models import DigitsCNN

    split = load_digits(seed=seed)
    torch.manual_seed(seed)
    model = DigitsCNN(n_classes=split.n_classes, channels=channels, width=width)
    config = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
    model, record = fit_or_load(
        model, f"digits-cnn-c{channels}-w{width}", split.x_train, split.y_train, config,
        device=device, progress=progress,
    )
    record["test_accuracy"] = accuracy(model, split.x_test, split.y_test)
    return model, split, record
