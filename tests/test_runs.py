"""The runner and the command line: one-line refusals before any compute, run folders, one record per run,
interrupts, untestable runs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flatrob.__main__ import _split_argv
from flatrob.jobs.run import _new_run_folder, run_chapter
from helpers import interruptible

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, cwd=ROOT, env=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "flatrob", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (["-p", "dataset", "cifar10"], "needs parameter 'data_root'"),
        (["-p", "attack_eps", ".nan"], "must be a finite number"),
        (["-p", "epochs", "0"], "must be >= 1"),
        (["-p", "attack_steps", "-3"], "parameter 'attack_steps' of chapter 'uncanny-valley' must be >= 1; got -3"),
        (["-p", "lr", "-1e-3"], "parameter 'lr' of chapter 'uncanny-valley' must be > 0; got -0.001"),
        (["-p", "dataset", "digits"], "'dataset' and 'architecture' of chapter 'uncanny-valley' do not fit"),
    ],
)
def test_cli_refuses_with_one_line_and_exit_code_2(tmp_path, args, message):
    start = time.perf_counter()
    proc = cli("run", "uncanny-valley", *args, "--out", str(tmp_path))
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir()) and time.perf_counter() - start < 60


@pytest.mark.parametrize(
    "make_out,message",
    [
        (lambda p: (p / "file").write_text("x") and p / "file", "cannot write runs under"),
        (lambda p: (p / "ro").mkdir(mode=0o500) or p / "ro", "cannot write runs under"),
    ],
)
def test_unwritable_out_is_one_line(tmp_path, make_out, message):
    out = make_out(tmp_path)
    if os.geteuid() == 0 and out.name == "ro":
        pytest.skip("root writes into read-only folders")
    proc = cli("run", "uncanny-valley", "-p", "epochs", "1", "--out", str(out))
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_values_that_look_like_options_and_arguments_for_snakemake():
    own, rest = _split_argv(["run", "x", "-p", "lr", "-1e-3", "--quiet"])
    assert own == ["run", "x", "-p", "lr", "=-1e-3", "--quiet"] and rest == []
    own, rest = _split_argv(["sweep", "x", "-p", "seed", "0,1", "--", "--unlock"])
    assert rest == ["--unlock"] and own[-1] == "=0,1"
    proc = cli("run", "uncanny-valley", "--", "--unlock")
    assert proc.returncode == 2 and "only 'sweep' takes them" in proc.stderr


def test_identical_runs_in_the_same_second_never_share_a_folder(tmp_path):
    first, final1 = _new_run_folder(tmp_path, None, "abcd1234")
    second, final2 = _new_run_folder(tmp_path, None, "abcd1234")
    assert first != second and final1 != final2 and first.is_dir() and second.is_dir()
    (first / "keep").write_text("mine")
    with pytest.raises(FileExistsError, match="in progress or was interrupted"):
        _new_run_folder(tmp_path, first.name[1 : -len(".partial")], "abcd1234")
    assert (first / "keep").read_text() == "mine"  # nobody deletes another run's partial folder


@pytest.mark.parametrize(
    "path",
    [
        "data/runs/basin/.20260101T000000Z-x.partial/notebook.ipynb",
        "data/sweeps/s/runs/basin/.seed-0.partial/input.ipynb",
    ],
)
def test_partial_folders_are_ignored_by_git(path):
    proc = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, capture_output=True)
    if proc.returncode == 128:
        pytest.skip("not a git checkout")
    assert proc.returncode == 0


@pytest.mark.slow
def test_ctrl_c_gives_one_line_a_clean_log_and_clean_lists_the_partial_run(tmp_path, tmp_cache):
    env = dict(os.environ, FLATROB_CACHE=str(tmp_cache))
    env.pop("MPLBACKEND", None)
    cmd = [
        sys.executable,
        "-m",
        "flatrob",
        "run",
        "uncanny-valley",
        "-p",
        "epochs",
        "200",
        "-p",
        "n_train",
        "2000",
        "--out",
        str(tmp_path),
        "--quiet",
    ]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible
    )
    deadline = time.time() + 300  # generous: on a loaded machine the kernel alone can take a minute to start
    while not list((tmp_cache / "models").glob("*.partial.pt")) and time.time() < deadline:
        time.sleep(0.5)  # wait until the training is under way
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().startswith("interrupted")
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err
    partial = next(tmp_path.glob("*/.*.partial"))
    log = (partial / "run.log").read_text()
    assert "Traceback" not in log and "ZMQError" not in log and "interrupted (Ctrl-C)" in log.splitlines()[-1]
    listing = cli("clean", "--out", str(tmp_path)).stdout
    assert ".partial" in listing and "1 unfinished run" in listing
    cli("clean", "--remove", "--out", str(tmp_path))
    assert not list(tmp_path.glob("*/.*.partial"))


@pytest.mark.slow
def test_a_run_keeps_one_record_and_finishes_untestable_when_nothing_flips(tmp_path, tmp_cache, monkeypatch):
    monkeypatch.delenv("MPLBACKEND", raising=False)
    params = {
        "n_train": 1000,
        "epochs": 1,
        "n_samples": 5,
        "attack_eps": 1e-6,
        "attack_steps": 2,
        "adv_steps": 1,
        "noise_steps": 2,
        "radii": [],
    }
    out = run_chapter("uncanny-valley", params, out_root=tmp_path, run_name="small", progress=True)
    assert out == tmp_path / "uncanny-valley" / "small"
    files = {p.name for p in out.iterdir()}
    assert {"provenance.json", "notebook.ipynb", "run.log", "kernel.log", "curves.csv", "checks.json"} <= files
    # one provenance record per run: the runner's, which the kernel read instead of making its own
    records = [
        p
        for p in out.rglob("*.json")
        if isinstance(doc := json.loads(p.read_text()), dict) and "commit" in doc and "machine" in doc
    ]
    assert [p.name for p in records] == ["provenance.json"]
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["params"]["attack_steps"] == 2 and prov["chapter"] == "uncanny-valley" and prov["status"] == "finished"
    assert {"commit", "device", "machine", "versions", "time_utc", "duration_s"} <= set(prov)
    nb = json.loads((out / "notebook.ipynb").read_text())
    assert "results_dir" not in json.dumps(nb["cells"][0]) and "FLATROB" not in json.dumps(nb["cells"][:3])
    assert not list((tmp_path / "uncanny-valley").glob(".*partial"))
    with pytest.raises(FileExistsError):
        run_chapter("uncanny-valley", params, out_root=tmp_path, run_name="small", progress=False)
    verdicts = {c["id"]: c for c in json.loads((out / "checks.json").read_text())}
    rise = next(v for k, v in verdicts.items() if k.startswith("6-rise-clean"))
    assert rise["verdict"] == "not testable here" and "0 of" in rise["evidence"]
    assert rise["setting"]["eps"] == 1e-6 and rise["setting"]["training"] == "clean"  # the setting, as data
    log = (out / "run.log").read_text()
    assert "train" in log and "epoch" in log  # training progress reaches the run's log
    out = run_chapter(
        "detector",
        {"n_train": 1000, "epochs": 1, "n_samples": 5, "adv_steps": 1, "attack_steps": 1, "radii": []},
        out_root=tmp_path,
        progress=False,
    )
    # the run's checks.json holds what this run computed, not the committed sweeps' verdicts over seeds
    own = json.loads((out / "checks.json").read_text())
    assert {c["setting"]["source"] for c in own} == {"live"} and {c["verdict"] for c in own} == {"not testable here"}


def test_params_prints_rules_and_the_typical_run_time():
    proc = cli("params", "basin")
    assert proc.returncode == 0 and "walk_eps = 0.5" in proc.stdout
    assert "[one of: fashion-mnist, fashion-mnist-3x32, mnist" in proc.stdout
    from flatrob.evidence.ledger import load
    from flatrob.util.paths import claims_dir

    if load(claims_dir(ROOT)).get("basin", {}).get("duration_s"):  # committed evidence records the time
        assert "typical run time with these defaults" in proc.stdout


def test_the_command_line_without_the_book_extra_says_so_in_one_line():
    """With the library alone installed (no PyYAML, jupytext, papermill, ...), the command line names the extra."""
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('yaml', 'jupytext', 'papermill'):\n"
        "            raise ModuleNotFoundError(f\"No module named '{name}'\", name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from flatrob.__main__ import main\n"
        "sys.exit(main(['list']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and 'pip install "flatrob[book]"' in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_corrupt_cifar_files_are_refused_before_any_compute(tmp_path):
    from helpers import write_cifar

    write_cifar(tmp_path, "cifar10")
    proc = cli(
        "run",
        "uncanny-valley",
        "-p",
        "dataset",
        "cifar10",
        "-p",
        "data_root",
        str(tmp_path),
        "-p",
        "architecture",
        "resnet18",
        "--out",
        str(tmp_path / "runs"),
    )
    assert proc.returncode == 2 and "does not match the official checksum" in proc.stderr
    assert "--unchecked-data" in proc.stderr and not (tmp_path / "runs").exists()


def test_a_check_that_was_not_logged_cannot_be_recorded(tmp_path, monkeypatch):
    """Recording refuses a check of this run that ctx.judge did not make (no later build could judge it again);
    a logged one, and a committed sweep's, are recorded."""
    from flatrob.evidence import checks
    from flatrob.jobs.chapter import setup_chapter

    monkeypatch.setenv("FLATROB_LEDGER", "0")
    ctx = setup_chapter("confidence-flatness", {})
    args = (0, 3000, ctx.setting(training="clean"))
    with pytest.raises(ValueError, match="not made through ctx.judge"):
        ctx.record([checks.check_confidence_band(*args)])
    made = ctx.judge(checks.check_confidence_band, *args)
    swept = checks.check_confidence_band(0, 3000, ctx.setting(training="clean") | {"source": "sweep s"})
    entries = ctx.record([*made, swept])
    assert len(entries) == 2
