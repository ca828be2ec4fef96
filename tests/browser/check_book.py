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
* on the landing page and in every experiment chapter the first figure is one of the paper's setting (its caption
  names the committed evidence it is drawn from), and no code is shown unfolded in the first screen (1000 px);
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

# Whether a reader can see an element: not when it or an ancestor is invisible, transparent, or clipped to nothing
# (the screen-reader-only pattern: MathJax's visually hidden MathML copy, mjx-assistive-mml, is positioned absolutely
# and clipped to rect(1px, 1px, 1px, 1px); .sr-only and .visually-hidden do the same). Such a copy is laid out with
# the system's math fonts, so its width says nothing about the page and everything about the machine.
SEEN_JS = """(e, stop) => {
  for (let a = e; a && a !== stop; a = a.parentElement) {
    const s = getComputedStyle(a);
    if (s.visibility === 'hidden' || s.opacity === '0') return false;
    const m = /rect\\(\\s*([-\\d.]+)px,?\\s*([-\\d.]+)px,?\\s*([-\\d.]+)px,?\\s*([-\\d.]+)px\\s*\\)/.exec(s.clip);
    if (m && ['absolute', 'fixed'].includes(s.position) && (+m[3] <= +m[1] || +m[2] <= +m[4])) return false;
    if (/inset\\(\\s*50%/.test(s.clipPath)) return false;
  }
  return true;
}"""

# Elements a reader sees sticking out of the content column, unless an ancestor inside it scrolls horizontally
# (clipping fails).
WIDTH_JS = (
    """() => {
  const seen = """
    + SEEN_JS
    + """;
  const article = document.querySelector('article') || document.body;
  const right = article.getBoundingClientRect().right;
  const out = [];
  for (const e of article.querySelectorAll('*')) {
    const r = e.getBoundingClientRect();
    if (r.width === 0 || r.right <= right + 2 || !seen(e, article)) continue;
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
)

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

# The first figure's caption, and the code inputs a reader sees in the first screen (a folded cell's input sits in a
# closed <details>, which Chromium lays out without showing).
FIRST_SCREEN_JS = """() => {
  const article = document.querySelector('article') || document.body;
  const caption = article.querySelector('figure figcaption');
  const code = [...article.querySelectorAll('.cell_input')].filter(e => {
    if (e.closest('details:not([open])') || (e.checkVisibility && !e.checkVisibility())) return false;
    const r = e.getBoundingClientRect();
    return r.height > 0 && r.top < window.innerHeight;
  }).map(e => e.innerText.trim().split('\\n')[0].slice(0, 60));
  return {caption: caption ? caption.innerText.slice(0, 120) : null, code};
}"""

#: The pages that open with the paper's setting: the landing page and every experiment chapter.
LEADING = re.compile(r"^(intro|experiments/[^/]+)\.html$")


def leading_problems(name: str, first: dict) -> dict[str, list[str]]:
    """What a page that must lead with the paper's setting shows first (name: the page's path in the build; first:
    what FIRST_SCREEN_JS found)."""
    if not LEADING.match(name):
        return {}
    caption = first.get("caption")
    return {
        "first figure not of the paper's setting (no committed evidence named)": (
            [] if caption and "committed" in caption else [str(caption)]
        ),
        "code shown in the first screen": list(first.get("code") or []),
    }


#: Names of the book's labels that must never reach the reader as text.
LABEL = re.compile(r"\b(?:eq|cor|thm|lem|def|prop|fig|sec|uv)-[a-z0-9]+(?:-[a-z0-9]+)+\b")


#: The viewports: a laptop's and a phone's width.
WIDTHS = (1280, 412)

#: The system fonts the check lays pages out with, and no others: Debian's DejaVu and Liberation, which every machine
#: of the project's kind has once Chromium is installed (`make browser-test` installs them when missing). A machine's
#: other fonts (TeX's, which `make pdf` installs, add about 260) change how text that falls back to system fonts is
#: laid out, so a check that used them would pass on one machine and fail on another.
BASE_FONT_DIRS = (
    "/usr/share/fonts/truetype/dejavu",
    "/usr/share/fonts/truetype/liberation",
    "/usr/share/fonts/truetype/liberation2",
    "/usr/share/fonts/opentype/liberation",
    "/usr/share/fonts/opentype/liberation2",
)


def base_fontconfig(folder: Path) -> Path:
    """A fontconfig file that knows only :data:`BASE_FONT_DIRS` (those present) and no system configuration (so no
    font folder that a package adds to ``/etc/fonts/conf.d``), with its own cache in ``folder``; Chromium started with
    ``FONTCONFIG_FILE`` set to it sees these fonts alone. Returns the file's path."""
    folder.mkdir(parents=True, exist_ok=True)
    dirs = "".join(f"  <dir>{d}</dir>\n" for d in BASE_FONT_DIRS if Path(d).is_dir())
    aliases = "".join(
        f"  <alias><family>{generic}</family><prefer><family>{family}</family></prefer></alias>\n"
        for generic, family in (
            ("sans-serif", "DejaVu Sans"),
            ("serif", "DejaVu Serif"),
            ("monospace", "DejaVu Sans Mono"),
        )
    )
    conf = folder / "fonts.conf"
    conf.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig>\n'
        f"{dirs}  <cachedir>{folder / 'cache'}</cachedir>\n{aliases}</fontconfig>\n"
    )
    return conf


def font_files(conf: Path) -> list[str]:
    """The font files fontconfig lists under ``conf`` (``fc-list``)."""
    import os
    import subprocess

    out = subprocess.run(
        ["fc-list", "--format", "%{file}\\n"],
        env={**os.environ, "FONTCONFIG_FILE": str(conf)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(line for line in out.splitlines() if line)


#: The self-test's page: a 400 px column holding a visible element too wide for it (must be reported), the same
#: width inside a box that scrolls (fine), inside MathJax's visually hidden MathML copy (fine: no reader sees it) and
#: inside an invisible element (fine).
SELF_TEST_PAGE = """<!DOCTYPE html><html><body style="margin:0"><article style="width:400px;position:relative">
<div id="visible" style="width:600px">too wide, seen</div>
<div style="overflow-x:auto"><div style="width:600px">scrolls</div></div>
<mjx-container style="display:block;position:relative"><mjx-assistive-mml style="position:absolute;top:0;left:0;
clip:rect(1px,1px,1px,1px);padding:1px 0 0 0;border:0;display:block;overflow:hidden"><div style="width:600px">
hidden copy</div></mjx-assistive-mml></mjx-container>
<div style="visibility:hidden"><div style="width:600px">invisible</div></div>
</article></body></html>"""


def self_test(browser: object, folder: Path) -> list[str]:
    """The width measurement on :data:`SELF_TEST_PAGE`: the problems found (an empty list when it reports the visible
    element and nothing else)."""
    page = folder / "self-test.html"
    page.write_text(SELF_TEST_PAGE)
    tab = browser.new_page(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
    tab.goto(page.resolve().as_uri(), wait_until="load")
    found = tab.evaluate(WIDTH_JS)
    tab.close()
    want = ["div.: 200 px too wide"]
    return [] if found == want else [f"the width check found {found}, expected {want}"]


def launch(pw: object, chromium: str, folder: Path) -> object:
    """Debian's Chromium, headless, offline, seeing only the base fonts (:func:`base_fontconfig`)."""
    import os

    return pw.chromium.launch(  # type: ignore[attr-defined]
        executable_path=chromium,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-sync",
        ],
        env={**os.environ, "FONTCONFIG_FILE": str(base_fontconfig(folder))},
    )


def check(html_root: Path, chromium: str) -> dict:
    import tempfile

    from playwright.sync_api import sync_playwright

    pages = sorted(
        p
        for p in html_root.rglob("*.html")
        if p.name not in SKIP
        and "_static" not in p.parts
        and 'http-equiv="Refresh"' not in p.read_text(errors="ignore")[:2000]
    )  # redirects: their target is checked
    report: dict = {"pages": {}, "failed": []}
    folder = Path(tempfile.mkdtemp(prefix="flatrob-browser-"))
    conf = base_fontconfig(folder)
    files = font_files(conf)
    outside_base = [f for f in files if not f.startswith(BASE_FONT_DIRS)]
    report["fonts"] = {"fontconfig": str(conf), "files": len(files), "outside the base folders": outside_base}
    with sync_playwright() as pw:
        browser = launch(pw, chromium, folder)
        report["self-test"] = (
            self_test(browser, folder)
            + ([f"fonts outside the base folders: {outside_base[:3]}"] if outside_base else [])
            + ([] if files else ["no base fonts found: apt-get install fonts-dejavu-core fonts-liberation"])
        )
        if report["self-test"]:
            report["failed"].append("self-test")
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
                first = page.evaluate(FIRST_SCREEN_JS)
                problems.update(leading_problems(path.relative_to(html_root).as_posix(), first))
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
    print(f"Laid out with {report['fonts']['files']} base font files only ({report['fonts']['fontconfig']})")
    if report["self-test"]:
        print(f"FAILED self-test: {report['self-test']}")
    for name in report["failed"]:
        if name == "self-test":
            continue
        print(f"FAILED {name}:")
        for kind, items in report["pages"][name].items():
            print(f"  {kind}: {items}")
    failed = [name for name in report["failed"] if name != "self-test"]
    print(f"{len(report['pages']) - len(failed)} of {len(report['pages'])} pages pass; report: {args.out}")
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
