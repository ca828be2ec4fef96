"""The book's layout, and every chapter executed the way a user re-runs it (jupytext | papermill)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest
import yaml

from helpers import FAST

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


def toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part["chapters"]]
    return files


def notebook_chapters():
    out = []
    for f in toc_files():
        path = BOOK / f"{f}.md"
        if path.read_text().startswith("---\njupytext:"):
            out.append(path)
    return out


def test_toc_symlink_and_config_at_root():
    link = BOOK / "_toc.yml"
    assert link.is_symlink() and link.resolve() == (ROOT / "_toc.yml").resolve()
    assert (ROOT / "_config.yml").exists() and not (BOOK / "_config.yml").exists()
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "cache"
    assert config["sphinx"]["config"]["nb_execution_raise_on_error"] is True
    assert config["sphinx"]["config"]["mathjax_path"].startswith("mathjax/"), "math must not come from a CDN"
    assert not (BOOK / "_static").exists(), "Jupyter Book adds every .js under the static paths: MathJax twice"


def test_every_toc_entry_exists():
    for f in toc_files():
        assert (BOOK / f"{f}.md").exists(), f


@pytest.mark.parametrize("path", notebook_chapters(), ids=lambda p: p.stem)
def test_first_code_cell_is_tagged_parameters(path):
    nb = jupytext.read(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and "parameters" in code[0].metadata.get("tags", []), (
        f"{path.name}: first code cell must be tagged parameters"
    )


def run_chapter(path: Path, out: Path, params: dict, env: dict) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "papermill", "-", str(out), "--cwd", str(path.parent), "-k", "python3"]
    if params:
        args += ["-y", yaml.safe_dump(params)]
    ipynb = subprocess.run(
        [sys.executable, "-m", "jupytext", "--to", "ipynb", "-o", "-", str(path)], check=True, capture_output=True
    ).stdout
    return subprocess.run(args, input=ipynb, capture_output=True, env=env, timeout=900)


@pytest.fixture()
def chapter_env(tmp_cache):
    env = dict(os.environ, FLATROB_CACHE=str(tmp_cache))
    env.pop("MPLBACKEND", None)  # the kernel draws inline, as in the book
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


@pytest.mark.slow
@pytest.mark.parametrize("path", notebook_chapters(), ids=lambda p: p.stem)
def test_chapter_executes_with_papermill_parameters(path, tmp_path, chapter_env):
    params = FAST[path.stem]
    out = tmp_path / f"{path.stem}.ipynb"
    proc = run_chapter(path, out, params, chapter_env)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    nb = json.loads(out.read_text())
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    if params:
        text = {k: json.dumps(v) if isinstance(v, str) else repr(v) for k, v in params.items()}  # papermill's quotes
        assert injected and all(f"{k} = {text[k]}" in "".join(injected[0]["source"]) for k in params)
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    # a warning printed into a cell's output reaches the reader's page, with the path of the machine that built it
    printed = "".join(
        "".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []) if o.get("name") == "stderr"
    )
    warned = re.findall(r"\w+Warning: .*", printed)
    assert not warned, warned


@pytest.mark.slow
def test_bad_parameter_fails_with_its_name(tmp_path, chapter_env):
    proc = run_chapter(BOOK / "theory" / "closed-form.md", tmp_path / "bad.ipynb", {"n_check": 0}, chapter_env)
    assert proc.returncode != 0
    assert (
        "parameter 'n_check' of chapter 'closed-form' must be >= 1"
        in proc.stderr.decode() + (tmp_path / "bad.ipynb").read_text()
    )
