"""The shape of the code: no import cycle, small modules, one home per concern, chapters that only call the
library."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "flatrob"
BASE = {"util.paths", "_cpu", "flatness"}  # import nothing of flatrob
#: The library a user imports: it imports nothing of the book's machinery (evidence/, jobs/).
LIBRARY = {"flatness", "bounds", "attacks", "valley", "masking", "detection", "models", "data", "cifar", "training"}
LIBRARY |= {"zoo", "manifold", "symbolic", "plotting", "tables", "_cpu", "store", "lipschitz", "npm_data"}
LIBRARY |= {"checkpoints"}


def module_name(path: Path) -> str:
    """``util.paths`` for src/flatrob/util/paths.py, ``evidence.checks`` for a package's __init__.py."""
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in SRC.rglob("*.py") if module_name(p)}


def flatrob_imports(path: Path) -> set[str]:
    """Every flatrob module a file imports, at any level (function-level imports included), as module names."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "flatrob":
            base = node.module.removeprefix("flatrob").removeprefix(".")
            for alias in node.names:  # "from flatrob.evidence import checks" imports a module
                name = f"{base}.{alias.name}" if base else alias.name
                out.add(name if name in MODULES else base)
        elif isinstance(node, ast.Import):
            out |= {a.name.removeprefix("flatrob.") for a in node.names if a.name.startswith("flatrob.")}
    return {m for m in out if m}


def test_no_import_cycle_and_base_modules_import_nothing():
    graph = {name: flatrob_imports(path) - {name} for name, path in MODULES.items() if name != "__main__"}
    for base in BASE:
        assert graph[base] == set(), f"{base} must import nothing of flatrob"
    assert graph["util.provenance"] <= {"util.paths", "util.devices", "_cpu"}
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in graph.get(node, ()):
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join(path + [nxt])}"
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])


def test_the_library_is_apart_from_the_books_machinery():
    """The half a user imports (flatness, attacks, models, ...) imports nothing of evidence/ or jobs/; util/ knows no
    claim and no chapter."""
    for name in LIBRARY:
        bad = {m for m in flatrob_imports(MODULES[name]) if m.split(".")[0] in ("evidence", "jobs")}
        assert not bad, f"{name} imports {bad}"
    for name in (n for n in MODULES if n.startswith("util")):
        bad = {m for m in flatrob_imports(MODULES[name]) if m.split(".")[0] in ("evidence", "jobs")}
        assert not bad, f"{name} imports {bad}"
    top = {p.stem for p in SRC.glob("*.py")} - {"__init__", "__main__"}
    assert top <= LIBRARY, f"modules of the machinery at the top level: {top - LIBRARY}"


def test_no_module_is_over_500_lines():
    sizes = {name: len(p.read_text().splitlines()) for name, p in MODULES.items()}
    assert max(sizes.values()) <= 500, {k: v for k, v in sizes.items() if v > 500}


def test_the_data_layout_lives_in_one_module():
    """Only flatrob.util.paths joins the folders of data/ and _build/ and spells the names of a run's and a sweep's
    files, in every subpackage; the Snakefile reads it too."""
    import flatrob.util.paths as paths

    names = [v for k, v in vars(paths).items() if k.isupper() and isinstance(v, str) and "." in v[1:]]
    assert {"provenance.json", "summary.json", "grid.json", "checks.json"} <= set(names)
    pattern = re.compile(r'/ "(data|runs|sweeps|claims|_build|ledger|raw|models|cache)"|"(' + "|".join(
        re.escape(n) for n in names) + r')"')  # fmt: skip
    offenders = [
        f"{module_name(p)}: {pattern.search(p.read_text()).group(0)}"
        for p in SRC.rglob("*.py")
        if module_name(p) != "util.paths" and pattern.search(p.read_text())
    ]
    assert not offenders, offenders
    assert "from flatrob.util.paths import" in (ROOT / "workflow" / "Snakefile").read_text()


def test_the_evidence_is_typed_across_modules():
    """No untyped dictionary (``dict[str, Any]``, ``Mapping[str, Any]``) in a signature or a record of the evidence
    code and the chapters' machinery: a setting, a chapter's parameters, a check's values, a measure and its rule,
    a training record, a logged call each have their type (:mod:`flatrob.evidence.records`), so strict mypy sees
    the code that decides the verdicts."""
    untyped = re.compile(r"(dict|Mapping)\[str, Any\]")
    offenders = [
        f"{module_name(p)}:{i}: {line.strip()}"
        for p in SRC.rglob("*.py")
        if module_name(p).split(".")[0] in ("evidence", "jobs")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if untyped.search(line)
    ]
    assert not offenders, offenders


def test_no_check_id_is_parsed_back():
    """A check's setting travels as data: nothing reads a radius or a model back out of a check's id."""
    for path in [*SRC.rglob("*.py"), *(ROOT / "book").rglob("*.md")]:
        text = path.read_text()
        assert "tag_value" not in text, path.name
        assert not re.search(r"re\.(search|match|fullmatch)\([^)]*\.id\b", text), path.name
        assert not re.search(r"\.id\.split\(", text), path.name


def test_no_chapter_pastes_the_set_up_or_decides_a_verdict():
    for path in (ROOT / "book").rglob("*.md"):
        text = path.read_text()
        if not text.startswith("---\njupytext:"):
            continue
        assert "setup_chapter(" in text and "from flatrob.jobs.chapter import setup_chapter" in text, path.name
        for pasted in (
            "check_parameters(",
            "resolve_device(",
            "provenance_line(provenance(",
            "AttackConfig(",
            "results_dir",
            "/ eps",
            "* eps /",
        ):
            assert pasted not in text, f"{path.name} still pastes {pasted}"
        for verdict in ('"reproduced" if', '"partly" if', '"not reproduced" if', "'reproduced' if"):
            assert verdict not in text, f"{path.name} decides a verdict inline"


def test_every_chapter_makes_its_checks_one_way():
    """A chapter, theory or experiment, makes a check only through ``ctx.judge`` (so that its measurements are
    logged and a later build judges them again), or ``ctx.compare`` for one shown beside the evidence only: no
    ``checks.check_*(`` called directly."""
    for path in (ROOT / "book").rglob("*.md"):
        text = path.read_text()
        direct = re.findall(r"(?<!judge\()(?<!compare\()checks\.check_\w+\(", text)
        assert not direct, f"{path.name} calls {direct[0]} directly: use ctx.judge(checks.check_..., ...)"


def test_dead_code_stays_gone():
    text = (SRC / "flatness.py").read_text() + (SRC / "attacks.py").read_text()
    for dead in ("functional_call", "autograd_hessian_trace", "meta:"):
        assert dead not in text, dead


def test_the_pages_workflow_grants_write_permissions_to_the_deploy_job_only():
    import yaml

    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    assert flow["permissions"] == {"contents": "read"}
    assert flow["jobs"]["build"]["permissions"] == {"contents": "read"}
    assert flow["jobs"]["deploy"]["permissions"] == {"pages": "write", "id-token": "write"}
    assert flow["jobs"]["deploy"]["if"].startswith("github.ref == 'refs/heads/main'")


def test_the_package_declares_what_it_needs_and_a_licence():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needs = {d.split("=")[0].split(">")[0] for d in project["dependencies"]}
    assert {"torch", "numpy", "scipy", "pandas", "sympy", "tqdm"} <= needs
    assert {"pyyaml", "jupytext", "papermill", "snakemake"} <= set(project["optional-dependencies"]["book"])
    assert project["license"] == "MIT" and (ROOT / "LICENSE").is_file() and (ROOT / "CITATION.cff").is_file()


def test_the_librarys_reference_documents_arguments_and_returns():
    """Every function on the API page (book/api.md) has its docstring in the book's convention: Args (when it takes
    any) and Returns sections, as the reference page renders them."""
    import importlib
    import inspect

    names = re.findall(r"\.\. autofunction:: ([\w.]+)", (ROOT / "book" / "api.md").read_text())
    assert len(names) >= 20
    for name in names:
        module, _, attr = name.rpartition(".")
        fn = getattr(importlib.import_module(module), attr)
        doc = inspect.getdoc(fn) or ""
        params = [p for p in inspect.signature(fn).parameters if p not in ("self", "cls")]
        assert "Returns:" in doc, f"{name} has no Returns section"
        assert not params or "Args:" in doc, f"{name} has no Args section"


def test_the_reference_page_names_the_books_results_by_reference_not_by_raw_label():
    """A docstring on the API page cites an equation or a theorem through a role (:eq:`eq-trace`,
    :prf:ref:`cor-confident-flat`), which the page renders as a link; a bare ``eq-trace`` would print the raw label,
    which the browser check refuses. Every cited label exists in the book."""
    import importlib
    import inspect

    api = (ROOT / "book" / "api.md").read_text()
    labels = set(re.findall(r"\$\$\s*\((eq-[\w-]+)\)", "".join(p.read_text() for p in (ROOT / "book").rglob("*.md"))))
    labels |= set(re.findall(r":label:\s*([\w-]+)", "".join(p.read_text() for p in (ROOT / "book").rglob("*.md"))))
    raw = re.compile(r"(?<![`\w-])(?:eq|cor|thm|lem|def|prop)-[a-z0-9]+(?:-[a-z0-9]+)*(?![\w`-])")
    names = re.findall(r"\.\. auto(?:function|class|data):: ([\w.]+)", api)
    assert len(names) >= 60, "the reference covers the library half"
    for name in names:
        module, _, attr = name.rpartition(".")
        doc = inspect.getdoc(getattr(importlib.import_module(module), attr)) or ""
        assert not raw.findall(doc), f"{name}: raw label {raw.findall(doc)} in its docstring"
        cited = re.findall(r":(?:eq|prf:ref):`([\w-]+)`", doc)
        assert set(cited) <= labels, f"{name} cites {set(cited) - labels}, not in the book"


def test_one_version_everywhere():
    import tomllib

    import flatrob

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    citation = re.search(r'^version: "([^"]+)"', (ROOT / "CITATION.cff").read_text(), re.M).group(1)
    released = re.search(r"^## (\d+\.\d+\.\d+) ", (ROOT / "CHANGELOG.md").read_text(), re.M).group(1)
    assert flatrob.__version__ == project == citation == released


def test_every_experiment_chapters_code_is_folded():
    """An experiment chapter shows prose and figures first: each code cell's source is folded (hide-input, one
    click away) or removed, the parameters cell included."""
    import jupytext

    for path in sorted((ROOT / "book" / "experiments").glob("*.md")):
        shown = [
            c.source.splitlines()[0] if c.source else ""
            for c in jupytext.read(path).cells
            if c.cell_type == "code"
            and not {"hide-input", "hide-cell", "remove-input", "remove-cell"} & set(c.metadata.get("tags", []))
        ]
        assert not shown, (path.name, shown[:2])


def test_one_colour_per_model_in_every_figure():
    from flatrob.plotting import colours_for

    assert colours_for(["adversarial", "clean"])["clean"] == colours_for(["clean"])["clean"]
    assert colours_for(["clean", "adversarial"])["adversarial"] == colours_for(["adversarial"])["adversarial"]
    other = colours_for(["wrn-10-1", "small-cnn"])
    assert len(set(map(tuple, other.values()))) == 2 and colours_for(["clean"])["clean"] not in other.values()


def test_the_reference_page_covers_every_public_function_of_the_library():
    """Every public function of the library half (its modules' ``__all__``) is on the API page, where the test above
    holds it to the docstring convention."""
    import importlib
    import inspect

    api = (ROOT / "book" / "api.md").read_text()
    shown = set(re.findall(r"\.\. auto(?:function|class|data):: ([\w.]+)", api))
    missing = []
    for name in sorted(LIBRARY - {"_cpu", "plotting", "tables", "npm_data"}):  # the figures and tables: the book's
        module = importlib.import_module(f"flatrob.{name}")
        for attr in getattr(module, "__all__", []):
            obj = getattr(module, attr)
            ours = inspect.isfunction(obj) and obj.__module__.startswith(module.__name__)
            if ours and f"flatrob.{name}.{attr}" not in shown:
                missing.append(f"flatrob.{name}.{attr}")
    assert not missing, missing


def test_the_reference_page_renders_without_a_warning(tmp_path):
    """The API page's autodoc blocks, built by Sphinx with the book's autodoc, napoleon and nitpicky settings
    (read from _config.yml), give no warning of their own: a Returns section whose first line holds a colon is read
    by napoleon as a type and becomes a reference that resolves nowhere, which the book's strict build (-W -n)
    refuses. Only the references to the chapters' labels (equations, theorems), absent from this one page, are
    allowed to dangle here."""
    import io

    import yaml
    from sphinx.application import Sphinx

    settings = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    blocks = re.findall(r"```\{eval-rst\}\n(.*?)```", (ROOT / "book" / "api.md").read_text(), re.S)
    assert len(blocks) >= 8, "the page's autodoc blocks"
    src = tmp_path / "src"
    src.mkdir()
    (src / "index.rst").write_text("API\n===\n\n" + "\n".join(blocks))
    keys = ("autodoc_typehints", "napoleon_google_docstring", "napoleon_numpy_docstring", "nitpick_ignore_regex")
    conf = {k: settings[k] for k in keys}
    conf["nitpick_ignore_regex"] = [tuple(pair) for pair in conf["nitpick_ignore_regex"]]
    conf |= {"extensions": ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx_proof", "sphinx.ext.mathjax"]}
    conf |= {"nitpicky": True, "math_numfig": True}
    log = io.StringIO()
    app = Sphinx(
        str(src),
        None,
        str(tmp_path / "out"),
        str(tmp_path / "doctrees"),
        "html",
        confoverrides=conf,
        status=None,
        warning=log,
        freshenv=True,
    )
    app.build()
    book_labels = re.compile(
        r"(equation not found|label '[\w-]+' not found|undefined label"
        r"|target not found: (eq|thm|cor|lem|def|prop)-)"
    )
    own = [line for line in log.getvalue().splitlines() if "WARNING" in line and not book_labels.search(line)]
    assert not own, "\n".join(own)
