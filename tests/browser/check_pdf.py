"""The PDF as a reader gets it, checked from its text (``pdftotext``): ``make pdf`` runs it after LaTeX.

* no table printed as the ``repr`` of a pandas ``Styler`` (or of any other object: ``<... at 0x...>``);
* the introduction is front matter: none of its sections is a numbered chapter, so that chapter, equation and
  theorem numbers are those of the web book (the first chapter, "Relative flatness", holds Definition 1.1);
* the table of contents has the parts (Theory, Experiments);
* every proof box has its title;
* no chapter is an empty page (its opening page holds only its number and title: the References page once did,
  its bibliography printed at the end of the book);
* the proof index names each box by its title, not by a raw label (``lem-bridging``);
* no code line wraps with Sphinx's markers (a red hook, ``,→`` in the text, starting the continued line, or a visible
  space ``␣`` ending the broken one);
* every figure sits within two pages of its first citation in the text ("Fig. 8.5"), and the LaTeX places every
  figure where the text puts it (``[H]``, no float: figure 15.1 once drifted 26 pages, behind the table of every
  check).

Exits with 1 and says what failed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OBJECT_REPR = re.compile(r"<[A-Za-z_.]+ (object )?at 0x[0-9a-f]+>")
LABEL = re.compile(r"\b(?:eq|cor|thm|lem|def|prop|fig|sec)-[a-z0-9]+(?:-[a-z0-9]+)+\b")
WRAP_MARK = re.compile(r"^\s*,?(?:→|↪)|␣", re.MULTILINE)
CAPTION = re.compile(r"\bFig\. (\d+\.\d+):")
CITATION = re.compile(r"\b(?:Fig\.|Figure|figure)\s+(\d+\.\d+)\b(?!:)")
FLOAT = re.compile(r"\\begin\{figure\}(?!\[H\])")
#: How many pages a figure may sit from its first citation.
FIGURE_PAGES = 2
INTRO_SECTIONS = ("What the paper claims", "How to read this book", "Re-running a chapter", "This build")


def problems(text: str) -> list[str]:
    found = []
    if "pandas.io.formats.style.Styler" in text or OBJECT_REPR.search(text):
        hit = OBJECT_REPR.search(text)
        found.append(f"an object's repr instead of a table: {hit.group(0) if hit else 'Styler'}")
    # a chapter's opening page reads "CHAPTER / ONE / RELATIVE FLATNESS", its running heads "Chapter 1. Relative
    # flatness": titles are matched in any case, the number with its dot dropped
    for title in INTRO_SECTIONS:
        if re.search(rf"chapter\s+\S+\s+{re.escape(title)}", text, re.IGNORECASE):
            found.append(f"the introduction's section {title!r} is a numbered chapter")
    first = re.search(r"chapter\s+(\S+?)\.?\s+relative flatness", text, re.IGNORECASE)
    if not first or first.group(1) not in ("1", "ONE", "One"):
        found.append(
            "the first chapter, Relative flatness, is not chapter 1" + (f" (it is {first.group(1)})" if first else "")
        )
    if "Definition 1.1" not in text:
        found.append("no Definition 1.1: theorem numbers differ from the web book's")
    contents = text[: text.find("Relative flatness", text.find("Relative flatness") + 1) + 1] if text else ""
    for part in ("Theory", "Experiments"):
        if not re.search(rf"\b(Part\s+\S+\s+)?{part}\b", contents):
            found.append(f"the table of contents has no part {part!r}")
    if "Proof" not in text:
        found.append("no proof box has a title")
    for page in text.split("\f"):
        lines = [line.strip() for line in page.splitlines() if line.strip()]
        if lines and lines[0].upper() == "CHAPTER" and len(lines) <= 4:
            found.append(f"chapter {' '.join(lines[1:3])!r} is an empty page")
    start = text.find("PROOF INDEX")
    if start >= 0:
        end = text.find("\f", text.find("\f", start) + 1)  # the index's page and the next
        raw = sorted(set(LABEL.findall(text[start : end if end > 0 else None])))
        if raw:
            found.append(f"the proof index lists raw labels: {', '.join(raw[:4])}")
    marks = WRAP_MARK.findall(text)
    if marks:
        found.append(f"{len(marks)} code lines wrap with markers ({marks[0].strip()!r})")
    return found + far_figures(text.split("\f"))


def far_figures(pages: list[str]) -> list[str]:
    """Figures more than ``FIGURE_PAGES`` pages from their first citation (pages: the PDF's text, page by page)."""
    caption: dict[str, int] = {}
    cited: dict[str, int] = {}
    for i, page in enumerate(pages):
        for m in CAPTION.finditer(page):
            caption.setdefault(m.group(1), i)
        for m in CITATION.finditer(page):
            cited.setdefault(m.group(1), i)
    return [
        f"figure {n} is on page {caption[n] + 1}, {abs(caption[n] - cited[n])} pages from its first citation"
        for n in sorted(caption, key=lambda n: tuple(map(int, n.split("."))))
        if n in cited and abs(caption[n] - cited[n]) > FIGURE_PAGES
    ]


def floating(tex: str) -> list[str]:
    """Figures the LaTeX lets float away from where the text puts them (tex: the book's LaTeX source)."""
    n = len(FLOAT.findall(tex))
    return [f"{n} figures float (not [H]): set latex_elements.figure_align"] if n else []


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pdf", type=Path, default=ROOT / "_build" / "latex" / "book.pdf")
    args = ap.parse_args()
    if not args.pdf.is_file():
        print(f"error: no PDF at {args.pdf}; run make pdf first", file=sys.stderr)
        return 2
    text = subprocess.run(
        ["pdftotext", "-layout", str(args.pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    found = problems(text)
    tex = args.pdf.with_suffix(".tex")
    if tex.is_file():
        found += floating(tex.read_text())
    for p in found:
        print(f"FAILED: {p}")
    print(f"{args.pdf}: {len(text.splitlines())} lines of text; {'fine' if not found else f'{len(found)} problems'}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
