"""Training: the recipe, the cache of trained models, checkpoints that resume to the same weights, faults."""

from pathlib import Path

import pytest
import torch

from flatrob.data import load_digits
from flatrob.models import DigitsCNN
from flatrob.training import TrainConfig, describe, fit_or_load, train, train_clean_and_adversarial, train_model
from helpers import interrupted_training


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
    _, rec3 = fit_or_load(
        DigitsCNN(channels=4, width=16), "t", s.x_train, s.y_train, TrainConfig(epochs=1), progress=False
    )
    assert not rec3["cached"] and rec3["key"] != rec["key"]


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
    s = load_digits()
    cfg = TrainConfig(epochs=2, batch_size=256)
    torch.manual_seed(0)
    _, rec = fit_or_load(DigitsCNN(channels=4, width=16), "r", s.x_train, s.y_train, cfg, progress=False)
    assert rec["resumed_from_epoch"] == 0 and not list((tmp_cache / "models").glob("*.partial.pt"))


SMALL = TrainConfig(epochs=2, batch_size=256)


def small_fit(cfg=SMALL):
    s = load_digits()
    torch.manual_seed(0)
    return fit_or_load(DigitsCNN(channels=4, width=16), "t", s.x_train, s.y_train, cfg, progress=False)


def test_unreadable_cached_model_is_named_set_aside_and_retrained(tmp_cache):
    model, rec = small_fit()
    path = Path(rec["path"])
    path.write_bytes(path.read_bytes()[:100])  # truncated: torch says "PytorchStreamReader failed ..."
    with pytest.warns(RuntimeWarning, match=f"cached model {path} is unreadable.*moved aside"):
        again, rec2 = small_fit()
    assert not rec2["cached"] and describe(rec2) == "trained now"
    assert len(list(path.parent.glob(f"{path.name}.corrupt-*"))) == 1
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)  # the same training, the same weights
    assert describe(small_fit()[1]) == "from the cache"


def test_truncated_checkpoint_resumes_from_the_last_good_one(tmp_path, monkeypatch, capsys):
    x, y, cfg, ckpt = interrupted_training(tmp_path, monkeypatch, after=2)
    ckpt.write_bytes(ckpt.read_bytes()[:200])  # the newest checkpoint is damaged; the one before is kept
    torch.manual_seed(0)
    full = DigitsCNN(channels=4, width=16)
    train(full, x, y, cfg, device=torch.device("cpu"), progress=False)
    torch.manual_seed(0)
    resumed = DigitsCNN(channels=4, width=16)
    with pytest.warns(RuntimeWarning, match=f"training checkpoint {ckpt} is unreadable"):
        history = train(resumed, x, y, cfg, device=torch.device("cpu"), progress=True, checkpoint=ckpt)
    assert "resumed from epoch 1 of 3" in capsys.readouterr().err
    assert [h["epoch"] for h in history] == [1, 2, 3]
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_fit_or_load_says_it_resumed(tmp_cache, monkeypatch):
    import flatrob.checkpoints as checkpoints

    cfg = TrainConfig(epochs=2, batch_size=256)
    save = checkpoints.save
    monkeypatch.setattr(
        checkpoints, "save", lambda obj, path: (save(obj, path), (_ for _ in ()).throw(KeyboardInterrupt))
    )
    with pytest.raises(KeyboardInterrupt):
        small_fit(cfg)
    monkeypatch.setattr(checkpoints, "save", save)
    _, rec = small_fit(cfg)
    assert rec["resumed_from_epoch"] == 1 and describe(rec) == "resumed from epoch 1, trained now"
    assert not list((tmp_cache / "models").glob("*.partial*"))


def test_train_clean_and_adversarial_shares_the_clean_cache_entry(tmp_cache):
    s = load_digits()
    cfg = TrainConfig(epochs=1, batch_size=256, adv_eps=0.1, adv_steps=1, adv_step_size=0.1)
    models, records = train_clean_and_adversarial("digits-cnn", s, cfg)
    assert set(models) == {"clean", "adversarial"} and records["clean"]["key"] != records["adversarial"]["key"]

    _, plain = train_model("digits-cnn", s, TrainConfig(epochs=1, batch_size=256), progress=False)
    assert plain["cached"] and plain["key"] == records["clean"]["key"]
    with pytest.raises(ValueError, match="adv_eps"):
        train_clean_and_adversarial("digits-cnn", s, TrainConfig(epochs=1))


def test_training_says_how_long_it_will_take(capsys):
    s = load_digits()
    torch.manual_seed(0)
    train(
        DigitsCNN(channels=4, width=16),
        s.x_train[:256],
        s.y_train[:256],
        TrainConfig(epochs=3, batch_size=128),
        device=torch.device("cpu"),
        progress=True,
    )
    err = capsys.readouterr().err
    assert "epoch 1 of 3 took" in err and "the training will take about" in err
