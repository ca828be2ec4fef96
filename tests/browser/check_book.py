"""The built book as a reader gets it, checked in headless Chromium: `make browser-test` (after `make book`).

For every page of ``_build/html``, at 1280 px and at 412 px (a phone), it waits until MathJax has typeset the page
and the equations are fitted to the column, then checks that

* no raw math remains in the rendered text outside code (``$...$``, ``\\(...\\)``, ``\\frac``, ``\\mathrm``, ...);
* no element is wider than the page's content column unless it sits in a box that scrolls;
* no display equation is wider than its container, and at 1280 px none had to be shrunk to fit (at 412 px the book
  shrinks long equations, to no less than half their size);
* no table is wider than the column;
* every image has loaded, sits in a numbered figure with a caption, has an alt text that is not a file path, and no
  image is shown twice on a page;
* no raw label name (``eq-...``, ``cor-...``, ``fig-...``) appears in the text;
* MathJax is loaded once, and the book's own text fonts (Noto Sans, fetched at set-up) have loaded, so that the
  text measures the same on every machine whatever fonts it has;
* no request leaves the machine (only ``file:`` and ``data:`` addresses).

It writes a JSON report (``--out``) and exits with 1 when a page fails. Chromium is Debian's
(``/usr/bin/chromium``), driven by Playwright without any browser download.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP = {"genindex.html", "search.html", "py-modindex.html"}
RAW_MATH = re.compile(
    r"\$[^$\n]*\\[A-Za-z]+[^$\n]*\$|\$[^$\s][^$\n]{0,60}[^$\s\\]\$|\\\(|\\\)|\\\[|\\frac|\\mathrm|"
    r"\\operatorname|\\kappa|\\varepsilon|\\ell_|\\delta"
)

# The rendered text of the article without code (sources and plain-text outputs are code, not prose).
TEXT_JS = """() => {
  const article = document.querySelector('article') || document.body;
  const clone = article.cloneNode(true);
  clone.querySelectorAll('pre, code, .highlight, .cell_input, mjx-container, script, style').forEach(e => e.remove());
  return clone.innerText;
}"""

# Elements sticking out of the content column, unless an ancestor inside it scrolls horizontally (clipping fails).
WIDTH_JS = """() => {
  const article = document.querySelector('article') || document.body;
  const right = article.getBoundingClientRect().right;
  const out = [];
  for (const e of article.querySelectorAll('*')) {
    const r = e.getBoundingClientRect();
    if (r.width === 0 || r.right <= right + 2) continue;
    let a = e, ok = false;
    while (a && a !== article) {
      const s = getComputedStyle(a);
      if (['auto', 'scroll'].includes(s.overflowX) && a.getBoundingClientRect().right <= right + 2) {
        ok = true; break;
      }
      a = a.parentElement;
    }
    const name = `${e.tagName.toLowerCase()}.${[...e.classList].join('.')}`;
    if (!ok) out.push(`${name}: ${Math.round(r.right - right)} px too wide`);
  }
  return out.slice(0, 10);
}"""

IMAGES_JS = (
    """() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'))"""
)

# Display equations: wider than their container, or shrunk (data-fit-scale, written by the book's fit-math.js).
MATH_JS = """() => [...document.querySelectorAll('mjx-container[display="true"]')].map(c => ({
  over: c.scrollWidth - c.clientWidth, scale: parseFloat(c.dataset.fitScale || '1'),
  text: (c.getAttribute('aria-label') || c.textContent || '').slice(0, 40)}))"""

# Tables wider than the article's column.
TABLES_JS = """() => {
  const article = document.querySelector('article') || document.body;
  const width = article.clientWidth;
  return [...article.querySelectorAll('table')].filter(t => t.getBoundingClientRect().width > width + 2)
    .map(t => `${Math.round(t.getBoundingClientRect().width)} px in ${width} px: ${t.innerText.slice(0, 40)}`);
}"""

# Images in the article: in a figure with a caption, with a real alt text, each shown once.
FIGURES_JS = r"""() => {
  const article = document.querySelector('article') || document.body;
  const out = {uncaptioned: [], alt: [], twice: []};
  const seen = {};
  for (const img of article.querySelectorAll('img')) {
    if (img.closest('.sd-card, .navbar-brand, .logo')) continue;
    const src = img.getAttribute('src') || '';
    const fig = img.closest('figure');
    if (!fig || !fig.querySelector('figcaption')) out.uncaptioned.push(src);
    const alt = (img.getAttribute('alt') || '').trim();
    // a path: one word with a slash, or a name ending in an image's extension ("final/peak" in a sentence is not)
    const isPath = (!/\s/.test(alt) && /[\\/]/.test(alt)) || /\.(png|jpe?g|svg)$/i.test(alt);
    if (!alt || isPath) out.alt.push(`${src}: alt "${alt}"`);
    if (seen[src]) out.twice.push(src);
    seen[src] = true;
  }
  return out;
}"""

# The book's own text fonts (book/_vendor/fonts): loaded, so that every machine measures the text alike.
FONTS_JS = """() => {
  const faces = [...document.fonts].filter(f => f.family.replace(/["']/g, '').startsWith('Noto Sans'));
  const out = faces.filter(f => f.status === 'error').map(f => `${f.family} ${f.weight} ${f.style}: error`);
  if (!faces.some(f => f.weight === '400' && f.style === 'normal' && f.status === 'loaded'))
    out.push('Noto Sans 400 normal: not loaded');
  return out;
}"""

#: Names of the book's labels that must never reach the reader as text.
LABEL = re.compile(r"\b(?:eq|cor|thm|lem|def|prop|fig|sec|uv)-[a-z0-9]+(?:-[a-z0-9]+)+\b")


#: The viewports: a laptop's and a phone's width.
WIDTHS = (1280, 412)


def check(html_root: Path, chromium: str) -> dict:
    from playwright.sync_api import sync_playwright

    pages = sorted(
        p
        for p in html_root.rglob("*.html")
        if p.name not in SKIP
        and "_static" not in p.parts
        and 'http-equiv="Refresh"' not in p.read_text(errors="ignore")[:2000]
    )  # redirects: their target is checked
    report: dict = {"pages": {}, "failed": []}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        for width in WIDTHS:
            page = browser.new_page(viewport={"width": width, "height": 1000})
            outside: list[str] = []

            def leaving(request, seen=outside):
                if not request.url.startswith(("file:", "data:", "blob:")):
                    seen.append(request.url)

            page.on("request", leaving)
            for path in pages:
                outside.clear()
                page.goto(path.resolve().as_uri(), wait_until="load")
                page.wait_for_function(
                    "() => !window.MathJax || !MathJax.startup || MathJax.startup.promise", timeout=30000
                )
                page.evaluate(
                    "() => (window.MathJax && MathJax.startup && MathJax.startup.promise) ? "
                    "MathJax.startup.promise.then(() => true) : true"
                )
                page.wait_for_function("() => document.documentElement.dataset.mathFitted === 'yes'", timeout=30000)
                page.wait_for_timeout(100)
                fonts = page.evaluate(FONTS_JS)
                text = page.evaluate(TEXT_JS)
                raw = [text[max(0, m.start() - 30) : m.end() + 30].replace("\n", " ") for m in RAW_MATH.finditer(text)][
                    :5
                ]
                mathjax = page.evaluate(
                    "() => [...document.scripts].filter(s => /tex-(chtml|svg|mml)/.test(s.src)).length"
                )
                maths = page.evaluate(MATH_JS)
                least = 0.95 if width >= 1000 else 0.5
                figures = page.evaluate(FIGURES_JS)
                problems = {
                    "the book's fonts not loaded": fonts,
                    "raw math": raw,
                    "too wide": page.evaluate(WIDTH_JS),
                    "display math wider than its container": [
                        f"{m['text']} ({m['over']} px)" for m in maths if m["over"] > 1
                    ],
                    f"display math shrunk below {least:g}": [
                        f"{m['text']} (to {m['scale']:.2f})" for m in maths if m["scale"] < least
                    ],
                    "tables wider than the column": page.evaluate(TABLES_JS),
                    "images not loaded": page.evaluate(IMAGES_JS),
                    "images without a numbered caption": figures["uncaptioned"],
                    "images whose alt text is a path or empty": figures["alt"],
                    "images shown twice": figures["twice"],
                    "raw label names in the text": sorted(set(LABEL.findall(text)))[:5],
                    "MathJax loaded more than once": [f"{mathjax} times"] if mathjax > 1 else [],
                    "requests leaving the machine": sorted(set(outside))[:5],
                }
                problems = {k: v for k, v in problems.items() if v}
                name = f"{path.relative_to(html_root)} @ {width} px"
                report["pages"][name] = problems or "ok"
                if problems:
                    report["failed"].append(name)
            page.close()
        browser.close()
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--html", type=Path, default=ROOT / "_build" / "html")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--out", type=Path, default=ROOT / "_build" / "browser-check.json")
    args = ap.parse_args()
    if not (args.html / "index.html").exists():
        print(f"error: no built book at {args.html}; run make book first", file=sys.stderr)
        return 2
    report = check(args.html, args.chromium)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for name in report["failed"]:
        print(f"FAILED {name}:")
        for kind, items in report["pages"][name].items():
            print(f"  {kind}: {items}")
    print(f"{len(report['pages']) - len(report['failed'])} of {len(report['pages'])} pages pass; report: {args.out}")
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
