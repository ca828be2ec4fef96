import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
# a figure whose text overlaps another panel fails the test that draws it, chapters executed by papermill included
os.environ["FLATROB_FIGURE_CHECK"] = "raise"


@pytest.fixture()
def tmp_cache(tmp_path, monkeypatch):
    """A private checkpoint cache, so tests never read or write the user's."""
    monkeypatch.setenv("FLATROB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def trained():
    """A small digits CNN trained on the CPU (15 epochs), and the first 40 test images: (model, x, y)."""
    from flatrob.data import load_digits
    from flatrob.models import DigitsCNN
    from flatrob.training import TrainConfig, train

    s = load_digits()
    torch.manual_seed(0)
    model = DigitsCNN(channels=8, width=32)
    train(
        model, s.x_train, s.y_train, TrainConfig(epochs=15, batch_size=128), device=torch.device("cpu"), progress=False
    )
    return model.eval(), s.x_test[:40], s.y_test[:40]
