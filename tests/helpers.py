"""Helpers shared by the tests and by the GPU check (benchmarks/gpu_check.py): small CIFAR-format files and the
chapters' test-size parameters."""

import pickle
import signal
from pathlib import Path

import numpy as np

# Test-size parameters of every chapter: the chapters' own assertions must hold for any training length.
FAST = {
    "relative-flatness": {"epochs": 3, "n_autograd": 4},
    "closed-form": {"epochs": 3, "n_check": 8, "symbolic_sizes": [2, 3]},
    "intro": {},
    "reproduction": {"show_all": False},
    "sweeps": {"only": "basin-small-cnn"},  # every committed summary is judged again by test_sweeps
    "paper": {},
    "cite": {},
    "reproducibility": {},
    "loss-change": {"epochs": 3, "n_random": 2000, "attack_steps": 5},
    "bridging-lemma": {"epochs": 3, "n_points": 20, "radii": [0.1, 0.3], "power_iters": 5},
    "local-bound": {
        "epochs": 3,
        "n_points": 20,
        "radii": [0.03, 0.3],
        "attack_steps": 5,
        "scales": [0.5, 1.0, 5.0],
        "n_random": 300,
    },
    "not-global": {
        "n_train": 200,
        "epochs": 15,
        "attack_eps": [0.05, 0.3],
        "attack_steps": 10,
        "n_attack": 40,
        "grid": 24,
    },
    "feature-robustness": {"epochs": 3, "n_points": 4, "n_haar": 200, "symbolic_sizes": [2, 3]},
    "uncanny-valley": {
        "n_train": 2000,
        "epochs": 1,
        "adv_steps": 1,
        "attack_steps": 6,
        "n_samples": 30,
        "noise_steps": 4,
        "radii": [0.2],
    },
    "valley-conditions": {
        "n_train": 2000,
        "epochs": 1,
        "budget_steps": [4, 8],
        "budget_travel": [2.5],
        "n_samples": 30,
    },
    "basin": {"n_train": 2000, "epochs": 1, "adv_steps": 1, "walk_steps": 8, "walk_step_size": 0.1, "n_samples": 30},
    "last-layer-scaling": {
        "n_train": 2000,
        "epochs": 1,
        "scales": [0.5, 1.0, 10.0],
        "attack_steps": 4,
        "n_samples": 30,
        "radii": [0.5],
    },
    "gradient-masking": {
        "n_train": 2000,
        "epochs": 1,
        "scales": [1.0, 10.0, 100.0],
        "attack_steps": 3,
        "square_queries": 20,
        "n_samples": 30,
        "radii": [0.2],
    },
    "confidence-flatness": {"n_train": 2000, "epochs": 1, "attack_steps": 8, "n_samples": 30, "radii": [0.2]},
    "detector": {
        "n_train": 2000,
        "epochs": 1,
        "adv_steps": 1,
        "attack_steps": 3,
        "path_steps": 6,
        "folds": 3,
        "n_samples": 30,
        "radii": [0.2],
    },
}


def interruptible() -> None:
    """``preexec_fn`` of a child process a test interrupts with SIGINT: SIGINT back to its default action. A job a
    shell starts in the background (``make test &``, ``nohup``) inherits SIGINT ignored, and Python installs no
    KeyboardInterrupt handler in a process that starts so: the Ctrl-C tests would then wait for a signal that never
    arrives, whatever the code under test does."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def write_cifar(root: Path, name: str, n_train=12, n_test=6, seed=0):
    """Small files in the CIFAR python format (pickled dicts of uint8 rows), as torchvision reads them."""
    from torchvision.datasets import CIFAR10, CIFAR100

    cls = {"cifar10": CIFAR10, "cifar100": CIFAR100}[name]
    folder = root / cls.base_folder
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    key = "labels" if name == "cifar10" else "fine_labels"
    k = 10 if name == "cifar10" else 100
    files = [f for f, _ in cls.train_list] + [f for f, _ in cls.test_list]
    expected = {}
    for f in files:
        n = n_test if f in [g for g, _ in cls.test_list] else n_train
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = rng.integers(0, k, size=n).tolist()
        with open(folder / f, "wb") as fh:
            pickle.dump({"data": data, key: labels}, fh)
        expected[f] = (data, labels)
    with open(folder / cls.meta["filename"], "wb") as fh:
        pickle.dump({cls.meta["key"]: [f"class{i}" for i in range(k)]}, fh)
    return expected


def interrupted_training(tmp_path, monkeypatch, after: int, cfg=None):
    """A checkpointed training of 3 epochs (``cfg``) on 256 digits, stopped right after its ``after``-th checkpoint.

    Returns (x, y, cfg, checkpoint path)."""
    import pytest
    import torch

    import flatrob.checkpoints as checkpoints
    from flatrob.data import load_digits
    from flatrob.models import DigitsCNN
    from flatrob.training import TrainConfig, train

    s = load_digits()
    x, y = s.x_train[:256], s.y_train[:256]
    cfg = cfg or TrainConfig(epochs=3, batch_size=64)
    ckpt = tmp_path / "run.partial.pt"
    saves = {"n": 0}
    save = checkpoints.save

    def save_then_interrupt(obj, path):
        save(obj, path)
        saves["n"] += 1
        if saves["n"] == after:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoints, "save", save_then_interrupt)
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        train(DigitsCNN(channels=4, width=16), x, y, cfg, device=torch.device("cpu"), progress=False, checkpoint=ckpt)
    monkeypatch.setattr(checkpoints, "save", save)
    return x, y, cfg, ckpt
