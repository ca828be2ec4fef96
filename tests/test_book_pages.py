"""The book's own Sphinx extension (book/_ext/book_pages.py) on a small project built here with Sphinx: the proof
index lists each box by its title, grouped by kind, with its chapter (not sphinx-proof's raw labels), and in the
LaTeX build a chapter that only held the bibliography (gathered at the end of the book) is not an empty chapter."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PAGES = {
    "conf.py": f'import sys\nsys.path.insert(0, {str(ROOT / "book" / "_ext")!r})\nproject = "mini"\n'
    'extensions = ["sphinx_proof", "book_pages"]\nroot_doc = "index"\n',
    "index.rst": "Mini\n====\n\n.. toctree::\n\n   a\n   references\n",
    "a.rst": "Chapter A\n=========\n\n.. prf:lemma:: The $\\log k$ threshold\n   :label: lem-x\n\n"
    "   A lemma citing [Ref1]_.\n\n.. prf:theorem:: Big result\n   :label: thm-y\n\n   A theorem.\n",
    "references.rst": "References\n==========\n\n.. [Ref1] A cited work.\n",
}


def build(tmp_path: Path, builder: str) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    for name, text in PAGES.items():
        (src / name).write_text(text)
    out = tmp_path / builder
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-q", "-b", builder, str(src), str(out)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def test_the_proof_index_lists_titles_by_kind(tmp_path):
    page = (build(tmp_path, "html") / "prf-prf.html").read_text()
    text = re.sub(r"<[^>]+>", " ", page)
    assert "The log k threshold" in text and "Big result" in text and "Chapter A" in text
    assert "Lemmas" in text and "Theorems" in text
    assert not re.search(r"\b(?:lem|thm)-[xy]\b", text), "a raw label is visible in the proof index"


def test_latex_has_no_empty_references_chapter_and_keeps_the_bibliography(tmp_path):
    tex = (build(tmp_path, "latex") / "mini.tex").read_text()
    assert r"\chapter{Chapter A}" in tex and r"\chapter{References}" not in tex
    assert r"\bibitem[Ref1]" in tex and r"\sphinxstyleindexentry{The log k threshold}" in tex


def check_pdf():
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_pdf", ROOT / "tests" / "browser" / "check_pdf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_pdf_check_finds_wrap_markers_far_figures_and_floats():
    cp = check_pdf()
    wrapped = "x = compute(a,␣\n    ,→b)\n"
    assert any("wrap with markers" in p for p in cp.problems(wrapped))
    assert not any("wrap with markers" in p for p in cp.problems("x = compute(a,\n      b)  # 13 → 400\n"))
    pages = ["as Fig. 8.5 shows", "", "", "Fig. 8.5: the valley", "Fig. 8.6: near", "see Fig. 8.6"]
    far = cp.far_figures(pages)
    assert len(far) == 1 and far[0].startswith("figure 8.5 is on page 4, 3 pages")
    assert not cp.far_figures(pages[:1] + pages[3:])
    assert cp.floating(r"\begin{figure}[htbp]x\end{figure}\begin{figure}[H]y\end{figure}")[0].startswith("1 figures")
    assert not cp.floating(r"\begin{figure}[H]y\end{figure}")
