"""The built book as a reader gets it, checked in headless Chromium: `make browser-test` (after `make book`).

For every page of ``_build/html`` it waits until MathJax has typeset the page, then checks that

* no raw math remains in the rendered text outside code (``$...$``, ``\\(...\\)``, ``\\frac``, ``\\mathrm``, ...);
* no element is wider than the page's content column unless it sits in a box that scrolls;
* every image has loaded;
* MathJax is loaded once;
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
RAW_MATH = re.compile(r"\$[^$\n]*\\[A-Za-z]+[^$\n]*\$|\$[^$\s][^$\n]{0,60}[^$\s\\]\$|\\\(|\\\)|\\\[|\\frac|\\mathrm|"
                      r"\\operatorname|\\kappa|\\varepsilon|\\ell_|\\delta")

# The rendered text of the article without code (sources and plain-text outputs are code, not prose).
TEXT_JS = """() => {
  const article = document.querySelector('article') || document.body;
  const clone = article.cloneNode(true);
  clone.querySelectorAll('pre, code, .highlight, .cell_input, mjx-container, script, style').forEach(e => e.remove());
  return clone.innerText;
}"""

# Elements sticking out of the content column, unless an ancestor inside it scrolls horizontally (clipping is a failure).
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
      if (['auto', 'scroll'].includes(s.overflowX) && a.getBoundingClientRect().right <= right + 2) { ok = true; break; }
      a = a.parentElement;
    }
    if (!ok) out.push(`${e.tagName.toLowerCase()}.${[...e.classList].join('.')}: ${Math.round(r.right - right)} px too wide`);
  }
  return out.slice(0, 10);
}"""

IMAGES_JS = """() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'))"""


def check(html_root: Path, chromium: str) -> dict:
    from playwright.sync_api import sync_playwright

    pages = sorted(p for p in html_root.rglob("*.html") if p.name not in SKIP and "_static" not in p.parts
                   and 'http-equiv="Refresh"' not in p.read_text(errors="ignore")[:2000])  # redirects: their target is checked
    report: dict = {"pages": {}, "failed": []}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        outside: list[str] = []
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("file:", "data:", "blob:")) else None)
        for path in pages:
            outside.clear()
            page.goto(path.resolve().as_uri(), wait_until="load")
            page.wait_for_function("() => !window.MathJax || !MathJax.startup || MathJax.startup.promise", timeout=30000)
            page.evaluate("() => (window.MathJax && MathJax.startup && MathJax.startup.promise) ? "
                          "MathJax.startup.promise.then(() => true) : true")
            page.wait_for_timeout(100)
            text = page.evaluate(TEXT_JS)
            raw = [text[max(0, m.start() - 30): m.end() + 30].replace("\n", " ") for m in RAW_MATH.finditer(text)][:5]
            mathjax = page.evaluate(
                "() => [...document.scripts].filter(s => /tex-(chtml|svg|mml)/.test(s.src)).length")
            problems = {
                "raw math": raw,
                "too wide": page.evaluate(WIDTH_JS),
                "images not loaded": page.evaluate(IMAGES_JS),
                "MathJax loaded more than once": [f"{mathjax} times"] if mathjax > 1 else [],
                "requests leaving the machine": sorted(set(outside))[:5],
            }
            problems = {k: v for k, v in problems.items() if v}
            name = str(path.relative_to(html_root))
            report["pages"][name] = problems or "ok"
            if problems:
                report["failed"].append(name)
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
