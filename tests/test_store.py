"""Committed trained models (flatrob.store): a model committed with its recipe comes back bit for bit, only for the
same recipe, and never from a file whose hash differs from its manifest."""

import json

import pytest
import torch

from flatrob import store
from flatrob.data import load_digits
from flatrob.training import TrainConfig, train_model
from flatrob.util.paths import MODELS_MANIFEST, models_dir


def test_a_committed_model_comes_back_for_its_recipe_only(tmp_path, tmp_cache):
    split = load_digits()
    config = TrainConfig(epochs=1, batch_size=256)
    model, record = train_model("digits-cnn", split, config, progress=False)
    assert store.load("digits-cnn", split, config, root=tmp_path) is None  # nothing committed yet
    path = store.add(model, "digits-cnn", split, config, {"commit": "abc"}, record["history"], root=tmp_path)
    entry = json.loads((models_dir(tmp_path) / MODELS_MANIFEST).read_text())["models"][path.name]
    assert entry["sha256"] == store.sha256(path) and entry["recipe"]["config"]["epochs"] == 1
    assert entry["test_accuracy"] == pytest.approx(record["test_accuracy"])
    back, rec = store.load("digits-cnn", split, config, root=tmp_path)
    for a, b in zip(model.state_dict().values(), back.state_dict().values(), strict=True):
        torch.testing.assert_close(a.cpu(), b.cpu(), rtol=0, atol=0)
    assert rec["committed"]["file"] == path.name and rec["test_accuracy"] == pytest.approx(record["test_accuracy"])
    # another recipe (one more epoch, another seed) finds nothing
    assert store.load("digits-cnn", split, TrainConfig(epochs=2, batch_size=256), root=tmp_path) is None
    assert store.load("digits-cnn", split, TrainConfig(epochs=1, batch_size=256, seed=1), root=tmp_path) is None
    # an altered file is refused, never used
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 1
    path.write_bytes(bytes(blob))
    with pytest.raises(RuntimeError, match="SHA-256"):
        store.load("digits-cnn", split, config, root=tmp_path)


def test_the_recipe_leaves_out_the_code_but_not_the_data_or_the_initialisation():
    split = load_digits()
    key, recipe = store.recipe("digits-cnn", split, TrainConfig(epochs=1))
    assert set(recipe) == {"architecture", "data", "config", "init", "train_data"}
    assert key == store.recipe("digits-cnn", split, TrainConfig(epochs=1))[0]  # deterministic
    assert key != store.recipe("digits-cnn", split, TrainConfig(epochs=1, seed=3))[0]  # another initialisation
    fewer = type(split)(**{**split.__dict__, "x_train": split.x_train[:-1], "y_train": split.y_train[:-1]})
    assert key != store.recipe("digits-cnn", fewer, TrainConfig(epochs=1))[0]  # other training data
