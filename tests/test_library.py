"""Data, models, training and provenance helpers."""

import json

import pytest
import torch

from flatrob import flatness
from flatrob.data import load_digits
from flatrob.models import DigitsCNN, last_layer_inputs, last_linear, rescale_feature_layer
from flatrob.provenance import provenance, provenance_line
from flatrob.training import TrainConfig, fit_or_load


def test_digits_split():
    s = load_digits(seed=0)
    assert s.x_train.shape[1:] == (1, 8, 8) and s.n_classes == 10
    assert len(s.y_train) + len(s.y_test) == 1797
    assert 0.0 <= float(s.x_train.min()) and float(s.x_train.max()) <= 1.0 and float(s.x_train.max()) == 1.0
    # stratified: every class in both parts, about 20% in test
    assert torch.bincount(s.y_test, minlength=10).min() >= 30
    again, other = load_digits(seed=0), load_digits(seed=1)
    assert torch.equal(s.y_test, again.y_test) and torch.equal(s.x_test, again.x_test)
    assert not torch.equal(s.x_test, other.x_test)
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits(test_fraction=1.5)


def test_rescaling_preserves_function_and_relative_sharpness():
    torch.manual_seed(0)
    model = DigitsCNN(channels=4, width=16).double()
    x = torch.rand(20, 1, 8, 8, dtype=torch.float64)
    W, b, phi = last_layer_inputs(model, x)
    for lam in (0.1, 7.0):
        other = rescale_feature_layer(model, lam)
        torch.testing.assert_close(other(x), model(x))
        W2, b2, phi2 = last_layer_inputs(other, x)
        torch.testing.assert_close(phi2, lam * phi)
        for kind in flatness.KINDS:
            torch.testing.assert_close(
                flatness.relative_sharpness(W2, phi2, b2, kind), flatness.relative_sharpness(W, phi, b, kind)
            )
        torch.testing.assert_close(flatness.hessian_trace(W2, phi2, b2), lam**2 * flatness.hessian_trace(W, phi, b))
    with pytest.raises(ValueError, match="lam must be positive"):
        rescale_feature_layer(model, 0.0)


def test_last_linear_requires_classifier():
    assert isinstance(last_linear(DigitsCNN()), torch.nn.Linear)
    with pytest.raises(TypeError, match="classifier"):
        last_linear(torch.nn.Linear(2, 2))


def test_train_config_validation():
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=-1.0)


def test_fit_or_load_trains_then_reuses(tmp_cache):
    s = load_digits()
    config = TrainConfig(epochs=2, lr=0.05, batch_size=128)
    torch.manual_seed(0)
    model, rec = fit_or_load(DigitsCNN(channels=4, width=16), "t", s.x_train, s.y_train, config, progress=False)
    assert not rec["cached"] and len(rec["history"]) == 2 and (tmp_cache / "models").exists()
    torch.manual_seed(0)
    again, rec2 = fit_or_load(DigitsCNN(channels=4, width=16), "t", s.x_train, s.y_train, config, progress=False)
    assert rec2["cached"] and rec2["key"] == rec["key"] and rec2["history"] == rec["history"]
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())
    # another configuration trains anew
    torch.manual_seed(0)
    _, rec3 = fit_or_load(DigitsCNN(channels=4, width=16), "t", s.x_train, s.y_train, TrainConfig(epochs=1), progress=False)
    assert not rec3["cached"] and rec3["key"] != rec["key"]


def test_provenance_is_json():
    record = provenance({"epochs": 3}, "cpu")
    json.dumps(record)
    assert record["params"] == {"epochs": 3} and record["device"].startswith("cpu")
    assert "commit" in provenance_line(record) and "epochs=3" in provenance_line(record)


def test_git_commit_dirty_ignores_data(tmp_path):
    import subprocess

    from flatrob.provenance import git_commit

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "data").mkdir()
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "data" / "claims.json").write_text("[]\n")
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    clean = git_commit(tmp_path)
    assert len(clean) == 10 and not clean.endswith("+dirty")
    (tmp_path / "data" / "claims.json").write_text("[1]\n")  # a result the chapters write
    assert git_commit(tmp_path) == clean
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == clean + "+dirty"
