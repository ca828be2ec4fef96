"""Data loaders, model zoo, instrumented PGD, adversarial training with resume, claims and the chapter runner."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from flatrob import flatness
from flatrob.attacks import STAT_NAMES, AttackConfig, interpolation_path, pgd
from flatrob.data import load_cifar, load_dataset, load_mnist1d
from flatrob.models import ARCHITECTURES, DigitsCNN, build_model, last_layer_inputs, scale_last_layer
from flatrob.runs import ParameterError, parameter_spec, run_chapter, validate
from flatrob.training import TrainConfig, fit_or_load, train
from helpers import interrupted_training, write_cifar


# ---------------------------------------------------------------- data


def test_mnist1d_generated_locally():
    s = load_mnist1d()
    assert s.input_shape == (1, 40) and s.n_classes == 10
    assert len(s.y_train) == 4000 and len(s.y_test) == 1000
    assert float(s.x_train.min()) == 0.0 and float(s.x_train.max()) == 1.0
    assert 0.0 <= float(s.x_test.min()) and float(s.x_test.max()) <= 1.0
    assert torch.equal(load_mnist1d().x_test, s.x_test)


@pytest.mark.parametrize("name,k", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_loader_on_small_files(tmp_path, name, k):
    expected = write_cifar(tmp_path, name)
    s = load_cifar(tmp_path, name, verify_md5=False)
    n_train = sum(len(v[1]) for f, v in expected.items() if "test" not in f)
    assert s.x_train.shape == (n_train, 3, 32, 32) and s.x_test.shape == (6, 3, 32, 32) and s.n_classes == k
    test_file = "test_batch" if name == "cifar10" else "test"
    data, labels = expected[test_file]
    # channel-first, [0, 1]: pixel (c, i, j) is byte c*1024 + i*32 + j of the row
    assert float(s.x_test[2, 1, 3, 4]) == pytest.approx(data[2, 1024 + 3 * 32 + 4] / 255.0)
    assert s.y_test.tolist() == labels
    with pytest.raises(RuntimeError, match="do not match the official checksums"):
        load_cifar(tmp_path, name)  # the default verifies the official md5 sums


def test_cifar_missing_files_say_where_to_put_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py.*Nothing is downloaded"):
        load_cifar(tmp_path / "nothing", "cifar10")
    with pytest.raises(ValueError, match="needs data_root"):
        load_dataset("cifar10")
    with pytest.raises(ValueError, match="dataset must be one of"):
        load_dataset("imagenet")


# ---------------------------------------------------------------- models


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_model_zoo_interface(name):
    shape = {"small-cnn": (1, 28, 28), "digits-cnn": (1, 8, 8), "mnist1d-cnn": (1, 40), "mlp": (1, 40)}.get(name, (3, 32, 32))
    torch.manual_seed(0)
    model = build_model(name, 10, shape).eval()
    x = torch.rand(2, *shape)
    logits, phi = model.forward_with_features(x)
    assert logits.shape == (2, 10) and phi.dim() == 2
    torch.testing.assert_close(model.classifier(phi), logits)
    torch.testing.assert_close(model(x), logits)


def test_model_zoo_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="needs inputs of shape"):
        build_model("resnet18", 10, (1, 4, 4))
    with pytest.raises(ValueError, match="needs inputs of shape \\(1, 28, 28\\)"):
        build_model("small-cnn", 10, (1, 8, 8))
    with pytest.raises(ValueError, match="needs inputs of shape"):
        build_model("vgg11-bn", 10, (1, 28, 28))  # five poolings need 32x32
    with pytest.raises(ValueError, match="architecture must be one of"):
        build_model("resnet50", 10, (3, 32, 32))


def test_scale_last_layer():
    torch.manual_seed(0)
    model = DigitsCNN().eval()
    x = torch.rand(16, 1, 8, 8)
    with torch.no_grad():
        z = model(x)
        for s in (0.25, 10.0):
            z_s = scale_last_layer(model, s)(x)
            torch.testing.assert_close(z_s, s * z)  # bias scaled too: logits scale, arg-max unchanged
            z_nb = scale_last_layer(model, s, scale_bias=False)(x)
            torch.testing.assert_close(z_nb, s * (z - model.classifier.bias) + model.classifier.bias)
    with pytest.raises(ValueError):
        scale_last_layer(model, 0)


# ---------------------------------------------------------------- attacks


@pytest.mark.parametrize("norm,eps,step", [("linf", 0.1, 0.02), ("l2", 1.0, 0.15)])
def test_pgd_matches_torchattacks(trained, norm, eps, step):
    torchattacks = pytest.importorskip("torchattacks")
    model, x, y = trained
    cfg = AttackConfig(norm, eps, 10, step)
    ref_attack = (torchattacks.PGD if norm == "linf" else torchattacks.PGDL2)(model, eps=eps, alpha=step, steps=10, random_start=False)
    ref = ref_attack(x, y)
    ours = pgd(model, x, y, cfg)
    tracked = pgd(model, x, y, cfg, track=True)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(tracked.x_final, ours, atol=0, rtol=0)  # tracking changes nothing
    assert (ours != x).any()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_stays_in_the_ball_with_random_start(trained, norm):
    model, x, y = trained
    eps = 0.05 if norm == "linf" else 0.5
    adv = pgd(model, x, y, AttackConfig(norm, eps, 5, eps / 2, random_start=True, seed=3))
    d = (adv - x).reshape(len(x), -1)
    size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    assert float(size.max()) <= eps + 1e-6 and float(adv.min()) >= 0 and float(adv.max()) <= 1
    again = pgd(model, x, y, AttackConfig(norm, eps, 5, eps / 2, random_start=True, seed=3))
    assert torch.equal(adv, again)


def test_tracked_statistics_equal_separate_computation(trained):
    model, x, y = trained
    traj = pgd(model, x, y, AttackConfig("linf", 0.2, 6, 0.05), track=True)
    assert traj.steps == 6 and set(traj.stats) == set(STAT_NAMES)
    assert traj.probs.shape == (7, len(x), 10) and all(v.shape == (7, len(x)) for v in traj.stats.values())
    # the final iterate's statistics, recomputed from scratch
    W, b, phi = last_layer_inputs(model, traj.x_final)
    torch.testing.assert_close(traj.stats["kappa_layer"][-1], flatness.relative_sharpness(W, phi, b, "layer"))
    torch.testing.assert_close(traj.stats["kappa_neuron"][-1], flatness.relative_sharpness(W, phi, b, "neuron"))
    torch.testing.assert_close(traj.stats["feature_norm"][-1], phi.norm(dim=1))
    loss = torch.nn.functional.cross_entropy(model(traj.x_final), y, reduction="none").detach()
    torch.testing.assert_close(traj.stats["loss"][-1], loss)
    # iterate 0 is the clean input
    W0, b0, phi0 = last_layer_inputs(model, x)
    torch.testing.assert_close(traj.stats["trace"][0], flatness.hessian_trace(W0, phi0, b0))
    flips = traj.flip_step()
    for i in range(len(x)):
        wrong = (traj.pred[:, i] != y[i]).nonzero()
        assert int(flips[i]) == (int(wrong[0]) if len(wrong) else -1)
    frame = traj.to_frame(model="m")
    assert len(frame) == 7 * len(x) and {"kappa_layer", "flip_step", "model"} <= set(frame.columns)


def test_interpolation_path_endpoints(trained):
    model, x, y = trained
    for target in ("gaussian", "uniform"):
        traj = interpolation_path(model, x, y, target, steps=4, seed=1)
        W, b, phi = last_layer_inputs(model, x)
        torch.testing.assert_close(traj.stats["kappa_layer"][0], flatness.relative_sharpness(W, phi, b))
        W, b, phi = last_layer_inputs(model, traj.x_final)
        torch.testing.assert_close(traj.stats["kappa_layer"][-1], flatness.relative_sharpness(W, phi, b))
        assert 0 <= float(traj.x_final.min()) and float(traj.x_final.max()) <= 1
    with pytest.raises(ValueError, match="target"):
        interpolation_path(model, x, y, "pink")


def test_attack_config_validation():
    with pytest.raises(ValueError, match="norm"):
        AttackConfig("l1")
    with pytest.raises(ValueError, match="eps"):
        AttackConfig(eps=-1)


# ---------------------------------------------------------------- training


def test_interrupted_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    cfg = TrainConfig(epochs=3, batch_size=64, adv_eps=0.05, adv_steps=2, adv_step_size=0.03)
    x, y, cfg, ckpt = interrupted_training(tmp_path, monkeypatch, after=2, cfg=cfg)  # stopped after epoch 2
    assert len(torch.load(ckpt, weights_only=False)["history"]) == 2
    cpu = torch.device("cpu")

    def fresh():
        torch.manual_seed(0)
        return DigitsCNN(channels=4, width=16)

    full = fresh()
    train(full, x, y, cfg, device=cpu, progress=False)
    resumed = fresh()  # a new process: fresh weights, state from the checkpoint
    history = train(resumed, x, y, cfg, device=cpu, progress=False, checkpoint=ckpt)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_fit_or_load_resumes_a_partial_checkpoint(tmp_cache):
    from flatrob.data import load_digits

    s = load_digits()
    cfg = TrainConfig(epochs=2, batch_size=256)
    torch.manual_seed(0)
    _, rec = fit_or_load(DigitsCNN(channels=4, width=16), "r", s.x_train, s.y_train, cfg, progress=False)
    assert rec["resumed_from_epoch"] == 0 and not list((tmp_cache / "models").glob("*.partial.pt"))


# ---------------------------------------------------------------- runner


def test_validation_names_the_parameter():
    assert set(validate("uncanny-valley", {})) == set(parameter_spec("uncanny-valley"))
    with pytest.raises(ParameterError, match="unknown parameter.*'stepz'.*accepted: dataset"):
        validate("uncanny-valley", {"stepz": 3})
    with pytest.raises(ParameterError, match="'attack_steps'.*must be an integer"):
        validate("uncanny-valley", {"attack_steps": "many"})
    with pytest.raises(ParameterError, match="'attack_steps'.*must be >= 1; got 0"):
        validate("uncanny-valley", {"attack_steps": 0})
    with pytest.raises(ParameterError, match="'dataset'.*must be one of \\['fashion-mnist', 'mnist', 'digits', 'mnist1d'"):
        validate("uncanny-valley", {"dataset": "emnist"})
    with pytest.raises(ParameterError, match="'augment'.*must be a boolean"):
        validate("uncanny-valley", {"augment": 1})
    with pytest.raises(ParameterError, match="unknown chapter"):
        validate("no-such-chapter", {})
    assert validate("uncanny-valley", {"attack_eps": 1})["attack_eps"] == 1.0  # an int is a fine float


def test_cli_rejects_bad_parameters_before_any_compute(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "flatrob", "run", "uncanny-valley", "-p", "attack_steps", "-3", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "parameter 'attack_steps' of chapter 'uncanny-valley' must be >= 1; got -3" in proc.stderr
    assert not any(tmp_path.iterdir())
