"""The browser check lays pages out with the base fonts alone (tests/browser/check_book.py): the fontconfig file it
gives Chromium lists no font outside Debian's DejaVu and Liberation folders, whatever else the machine has (TeX's
fonts, which make pdf installs, changed the layout of MathJax's hidden MathML copy and failed CI on a new machine)."""

import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def check_book():
    spec = importlib.util.spec_from_file_location("check_book", ROOT / "tests" / "browser" / "check_book.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(shutil.which("fc-list") is None, reason="fontconfig's fc-list is not installed")
def test_the_browser_check_sees_only_the_base_fonts(tmp_path):
    cb = check_book()
    conf = cb.base_fontconfig(tmp_path)
    files = cb.font_files(conf)
    assert files, "no DejaVu or Liberation fonts on this machine (apt-get install fonts-dejavu-core fonts-liberation)"
    assert all(f.startswith(cb.BASE_FONT_DIRS) for f in files), [
        f for f in files if not f.startswith(cb.BASE_FONT_DIRS)
    ]
    # a font folder elsewhere (as TeX adds through /etc/fonts/conf.d) is not seen
    text = conf.read_text()
    assert "conf.d" not in text and "/usr/share/texmf" not in text and "<include" not in text


def test_the_landing_page_and_experiment_chapters_must_lead_with_the_papers_setting():
    cb = check_book()
    good = {"caption": "Fig. 8.1 The uncanny valley ... (the committed sweep of a WideResNet-10-1)", "code": []}
    assert not any(cb.leading_problems("experiments/uncanny-valley.html", good).values())
    small = {"caption": "Fig. 8.1 The small CNN run live in this page", "code": ["import torch"]}
    found = cb.leading_problems("intro.html", small)
    assert found["first figure not of the paper's setting (no committed evidence named)"]
    assert found["code shown in the first screen"] == ["import torch"]
    assert any(cb.leading_problems("experiments/basin.html", {"caption": None, "code": []}).values())  # no figure
    assert cb.leading_problems("theory/closed-form.html", small) == {}
