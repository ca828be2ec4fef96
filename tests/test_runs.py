"""The run engine under faults and bad input: structure, parameters, caches, run folders, interrupts, the ledger."""

import ast
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from flatrob import ledger, provenance
from flatrob.attacks import STAT_NAMES, Trajectory, curves, valley_samples, valley_summary
from flatrob.checks import Check, check_valley_shape
from flatrob.data import load_digits
from flatrob.models import DigitsCNN
from flatrob.runs import ParameterError, _new_run_folder, parameter_spec, parse_value, run_chapter, validate
from flatrob.training import TrainConfig, describe, fit_or_load, train
from helpers import interrupted_training

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "flatrob"


# ---------------------------------------------------------------- structure


def flatrob_imports(path: Path) -> set[str]:
    """Every flatrob module a file imports, at any level (function-level imports included)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "flatrob":
            if node.module == "flatrob":
                out |= {a.name for a in node.names}
            else:
                out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("flatrob.")}
    return out


def test_no_import_cycle_in_the_library():
    graph = {p.stem: flatrob_imports(p) - {p.stem} for p in SRC.glob("*.py")}
    assert graph["provenance"] == set() and graph["flatness"] == set(), "the base modules import nothing of flatrob"
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in graph.get(node, ()):
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join(path + [nxt])}"
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])


def test_no_chapter_pastes_the_set_up_or_decides_a_verdict():
    for path in (ROOT / "book").rglob("*.md"):
        text = path.read_text()
        if not text.startswith("---\njupytext:"):
            continue
        assert "setup_chapter(" in text, path.name
        for pasted in ("check_parameters(", "resolve_device(", "provenance_line(provenance(", "ledger_entry("):
            assert pasted not in text, f"{path.name} still pastes {pasted}"
        for verdict in ('"reproduced" if', '"partly" if', '"not reproduced" if', "'reproduced' if"):
            assert verdict not in text, f"{path.name} decides a verdict inline"


def test_every_chapter_parameter_line_parses_and_has_a_device():
    from flatrob.runs import chapters

    for name in chapters():
        spec = parameter_spec(name)
        if name not in ("intro", "reproduction", "sweeps"):  # pages that compute nothing on a device
            assert spec["device"].rules == ("one of: DEVICES",), name
        for p in spec.values():
            p.describe()  # named choice sets resolve


# ---------------------------------------------------------------- parameters


def test_numbers_in_any_float_syntax_and_never_nan_or_infinite():
    assert validate("uncanny-valley", {"lr": parse_value("1e-3")})["lr"] == 0.001
    assert validate("uncanny-valley", {"lr": "1E-3"})["lr"] == 0.001  # as papermill may pass it
    assert validate("local-bound", {"radii": parse_value("[1e-2, 0.1]")})["radii"] == [0.01, 0.1]
    assert validate("uncanny-valley", {"attack_steps": parse_value("1_000")})["attack_steps"] == 1000
    for bad in (".nan", ".inf", "-.inf", "nan", "inf"):
        with pytest.raises(ParameterError, match="'attack_eps'.*finite"):
            validate("uncanny-valley", {"attack_eps": parse_value(bad)})
    with pytest.raises(ParameterError, match="'radii'.*finite"):
        validate("local-bound", {"radii": parse_value("[0.1, .inf]")})
    with pytest.raises(ParameterError, match="'epochs'.*must be an integer"):
        validate("uncanny-valley", {"epochs": parse_value("1e3")})


def test_list_rules_run_before_any_compute():
    with pytest.raises(ParameterError, match="'scales'.*must contain 1.0"):
        validate("last-layer-scaling", {"scales": [0.5, 2.0]})
    with pytest.raises(ParameterError, match="'scales'.*strictly ascending"):
        validate("last-layer-scaling", {"scales": [1.0, 0.5]})
    with pytest.raises(ParameterError, match="'scales'.*must start at 1.0"):
        validate("gradient-masking", {"scales": [2.0, 5.0]})
    with pytest.raises(ParameterError, match="'scales' of chapter 'local-bound': every item must be > 0; got -1.0"):
        validate("local-bound", {"scales": [-1.0, 1.0]})
    with pytest.raises(ParameterError, match="'symbolic_sizes' of chapter 'closed-form': every item must be one of \\[2, 3, 4, 5, 6\\]; got 9"):
        validate("closed-form", {"symbolic_sizes": [2, 9]})
    with pytest.raises(ParameterError, match="'folds' of chapter 'detector' must be <= 20"):
        validate("detector", {"folds": 21})


def test_impossible_settings_fail_before_the_kernel(tmp_path):
    with pytest.raises(ParameterError, match="needs parameter 'data_root'"):
        validate("uncanny-valley", {"dataset": "cifar10"})
    with pytest.raises(ParameterError, match="lacks data_batch_1.*nothing is downloaded"):
        validate("uncanny-valley", {"dataset": "cifar10", "data_root": str(tmp_path)})
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="'device'.*CUDA is not available"):
            validate("basin", {"device": "cuda"})


@pytest.mark.parametrize("args,message", [
    (["-p", "dataset", "cifar10"], "needs parameter 'data_root'"),
    (["-p", "attack_eps", ".nan"], "must be a finite number"),
    (["-p", "epochs", "0"], "must be >= 1"),
])
def test_cli_refuses_with_one_line_and_exit_code_2(tmp_path, args, message):
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "flatrob", "run", "uncanny-valley", *args, "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir()) and time.perf_counter() - start < 30


# ---------------------------------------------------------------- where results go


def test_root_results_and_cache_follow_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv(provenance.ROOT_ENV, raising=False)
    monkeypatch.delenv(provenance.CACHE_ENV, raising=False)
    (tmp_path / "book" / "experiments").mkdir(parents=True)
    (tmp_path / "_config.yml").write_text("title: t\n")
    monkeypatch.chdir(tmp_path / "book" / "experiments")  # where a chapter executes
    assert provenance.repo_root() == tmp_path.resolve()
    assert provenance.cache_dir() == tmp_path.resolve() / "cache"
    other = tmp_path / "elsewhere"
    monkeypatch.setenv(provenance.ROOT_ENV, str(other))
    assert provenance.repo_root() == other.resolve()
    monkeypatch.setenv(provenance.CACHE_ENV, str(tmp_path / "c"))
    assert provenance.cache_dir() == tmp_path / "c"


def test_only_committed_or_promoted_runs_count(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("config", "user.email", "t@t")
    git("config", "user.name", "t")
    for run in ("a-committed", "b-local", "c-promoted", ".d.partial"):
        d = tmp_path / "data" / "runs" / "ch" / run
        d.mkdir(parents=True)
        (d / "provenance.json").write_text(json.dumps({"params": {"run": run}}))
    (tmp_path / "data" / "runs" / "ch" / "c-promoted" / provenance.PROMOTED).write_text("yes\n")
    git("add", "data/runs/ch/a-committed")
    git("commit", "-qm", "a run")
    found = [r["dir"].name for r in provenance.committed_runs("ch", root=tmp_path)]
    assert found == ["a-committed", "c-promoted"]
    assert provenance.committed_runs("none", root=tmp_path) == []


def test_results_files_are_strict_json(tmp_path):
    provenance.save_results(tmp_path, {"s.json": {"a": float("nan"), "b": [1.0, float("inf")], "c": 2.0}})
    assert json.loads((tmp_path / "s.json").read_text(), parse_constant=lambda c: pytest.fail(c)) == {
        "a": None, "b": [1.0, None], "c": 2.0}


# ---------------------------------------------------------------- caches and checkpoints


def small_fit(cfg=TrainConfig(epochs=2, batch_size=256)):
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
    import flatrob.training as tr

    cfg = TrainConfig(epochs=2, batch_size=256)
    save = tr._atomic_save
    monkeypatch.setattr(tr, "_atomic_save", lambda obj, path: (save(obj, path), (_ for _ in ()).throw(KeyboardInterrupt)))
    with pytest.raises(KeyboardInterrupt):
        small_fit(cfg)
    monkeypatch.setattr(tr, "_atomic_save", save)
    _, rec = small_fit(cfg)
    assert rec["resumed_from_epoch"] == 1 and describe(rec) == "resumed from epoch 1, trained now"
    assert not list((tmp_cache / "models").glob("*.partial*"))


# ---------------------------------------------------------------- degenerate data


def test_valley_summary_and_checks_when_nothing_flips_or_starts_correct():
    t, n = 4, 3
    stats = {name: torch.rand(t, n, dtype=torch.float64) + 0.5 for name in STAT_NAMES}
    wrong_from_start = Trajectory(torch.zeros(n, dtype=torch.long), torch.zeros(t, n, 3),
                                  torch.ones(t, n, dtype=torch.long), stats, torch.zeros(n, 1))
    s = valley_summary(wrong_from_start)
    assert s["n_start_correct"] == 0 and s["n_flipped"] == 0 and math.isnan(s["flip_step"])
    samples = valley_samples(wrong_from_start)
    assert {c.verdict for c in check_valley_shape(samples, "m")} == {"not testable here"}
    assert "0 of 3 started correct" in check_valley_shape(samples, "m")[0].evidence
    frame = curves(wrong_from_start)
    assert len(frame) == t * len(STAT_NAMES) and frame["median"].isna().all()


# ---------------------------------------------------------------- run folders


def test_identical_runs_in_the_same_second_never_share_a_folder(tmp_path):
    first, final1 = _new_run_folder(tmp_path, None, "abcd1234")
    second, final2 = _new_run_folder(tmp_path, None, "abcd1234")
    assert first != second and final1 != final2 and first.is_dir() and second.is_dir()
    (first / "keep").write_text("mine")
    with pytest.raises(FileExistsError, match="in progress or was interrupted"):
        _new_run_folder(tmp_path, first.name[1:-len(".partial")], "abcd1234")
    assert (first / "keep").read_text() == "mine"  # nobody deletes another run's partial folder


def test_partial_folders_are_ignored_by_git():
    proc = subprocess.run(["git", "check-ignore", "-q", "data/runs/basin/.20260101T000000Z-x.partial/notebook.ipynb"],
                          cwd=ROOT, capture_output=True)
    if proc.returncode == 128:
        pytest.skip("not a git checkout")
    assert proc.returncode == 0


@pytest.mark.slow
def test_ctrl_c_gives_one_line_and_clean_lists_the_partial_run(tmp_path, tmp_cache):
    env = dict(os.environ, FLATROB_CACHE=str(tmp_cache))
    env.pop("MPLBACKEND", None)
    cmd = [sys.executable, "-m", "flatrob", "run", "uncanny-valley", "-p", "epochs", "200", "-p", "n_train", "2000",
           "--out", str(tmp_path), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list((tmp_cache / "models").glob("*.partial.pt")) and time.time() < deadline:
        time.sleep(0.5)  # wait until the training is under way
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().startswith("interrupted")
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err
    listing = subprocess.run([sys.executable, "-m", "flatrob", "clean", "--out", str(tmp_path)], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    assert ".partial" in listing and "1 unfinished run" in listing
    subprocess.run([sys.executable, "-m", "flatrob", "clean", "--remove", "--out", str(tmp_path)], cwd=ROOT, check=True,
                   capture_output=True)
    assert not list(tmp_path.glob("*/.*.partial"))


@pytest.mark.slow
def test_a_run_where_nothing_flips_finishes_with_untestable_verdicts(tmp_path, tmp_cache, monkeypatch):
    monkeypatch.delenv("MPLBACKEND", raising=False)
    params = {"n_train": 1000, "epochs": 1, "n_samples": 5, "attack_eps": 1e-6, "attack_steps": 2, "adv_steps": 1,
              "noise_steps": 2, "radii": []}
    out = run_chapter("uncanny-valley", params, out_root=tmp_path, run_name="small", progress=True)
    # the run folder: parameters, provenance, the executed notebook, the log and the results
    assert out == tmp_path / "uncanny-valley" / "small"
    assert {"params.json", "provenance.json", "notebook.ipynb", "run.log", "curves.csv", "checks.json"} <= {
        p.name for p in out.iterdir()}
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["params"]["attack_steps"] == 2 and prov["chapter"] == "uncanny-valley"
    assert {"commit", "device", "versions", "time_utc", "duration_s"} <= set(prov)
    assert not list((tmp_path / "uncanny-valley").glob(".*partial"))
    with pytest.raises(FileExistsError):
        run_chapter("uncanny-valley", params, out_root=tmp_path, run_name="small", progress=False)
    verdicts = {c["id"]: c for c in json.loads((out / "checks.json").read_text())}
    rise = next(v for k, v in verdicts.items() if k.startswith("6-rise-clean"))
    assert rise["verdict"] == "not testable here" and "0 inputs flipped" in rise["evidence"]
    log = (out / "run.log").read_text()
    assert "train" in log and "epoch" in log  # training progress reaches the run's log
    out = run_chapter("detector", {"n_train": 1000, "epochs": 1, "n_samples": 5, "adv_steps": 1, "attack_steps": 1,
                                   "radii": []},
                      out_root=tmp_path, progress=False)
    assert {c["verdict"] for c in json.loads((out / "checks.json").read_text())} == {"not testable here"}


# ---------------------------------------------------------------- the ledger


def test_ledger_files_change_only_when_a_result_does(tmp_path):
    check = Check("6-rise-m", 6, "s", "reproduced", "peak/start = 30", values={"ratio": 30.0})
    prov = {"commit": "abc", "time_utc": "2026-01-01T00:00:00+00:00", "device": "cpu"}
    entries = [ledger.entry(check, "digits", "ch", prov)]
    path = ledger.record("ch", entries, root=tmp_path, force=True)
    before = path.read_text()
    later = [ledger.entry(check, "digits", "ch", prov | {"commit": "def", "time_utc": "2026-02-02T00:00:00+00:00"})]
    assert ledger.record("ch", later, root=tmp_path, force=True) is None and path.read_text() == before
    changed = Check("6-rise-m", 6, "s", "reproduced", "peak/start = 31", values={"ratio": 31.0})
    assert ledger.record("ch", [ledger.entry(changed, "digits", "ch", prov)], root=tmp_path, force=True) == path
    assert path.read_text() != before
    ledger.build(tmp_path)
    stamp = (tmp_path / "data" / "claims.json").stat().st_mtime_ns
    time.sleep(0.01)
    ledger.build(tmp_path)
    assert (tmp_path / "data" / "claims.json").stat().st_mtime_ns == stamp
    assert ledger.record("ch", entries, root=tmp_path) is None  # without FLATROB_LEDGER=1 nothing is written


