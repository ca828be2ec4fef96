"""The shape of the code: no import cycle, small modules, one home per concern, chapters that only call the
library."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "flatrob"
BASE = {"paths", "_cpu", "flatness"}  # import nothing of flatrob (provenance: only these)


def flatrob_imports(path: Path) -> set[str]:
    """Every flatrob module a file imports, at any level (function-level imports included)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "flatrob":
            if node.module == "flatrob":
                out |= {a.name for a in node.names}
            else:
                out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("flatrob.")}
    return out


def test_no_import_cycle_and_base_modules_import_nothing():
    graph = {p.stem: flatrob_imports(p) - {p.stem} for p in SRC.glob("*.py") if p.stem != "__init__"}
    for base in BASE:
        assert graph[base] == set(), f"{base} must import nothing of flatrob"
    assert graph["provenance"] <= {"paths", "_cpu"}
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


def test_no_module_is_over_500_lines():
    sizes = {p.name: len(p.read_text().splitlines()) for p in SRC.glob("*.py")}
    assert max(sizes.values()) <= 500, {k: v for k, v in sizes.items() if v > 500}


def test_the_data_layout_lives_in_one_module():
    """Only flatrob.paths joins the folders of data/ and _build/; the Snakefile reads it too."""
    pattern = re.compile(r'/ "(data|runs|sweeps|claims|_build|ledger|raw)"')
    offenders = [p.name for p in SRC.glob("*.py") if p.stem != "paths" and pattern.search(p.read_text())]
    assert not offenders, offenders
    assert "from flatrob.paths import" in (ROOT / "workflow" / "Snakefile").read_text()


def test_no_check_id_is_parsed_back():
    """A check's setting travels as data: nothing reads a radius or a model back out of a check's id."""
    for path in [*SRC.glob("*.py"), *(ROOT / "book").rglob("*.md")]:
        text = path.read_text()
        assert "tag_value" not in text, path.name
        assert not re.search(r"re\.(search|match|fullmatch)\([^)]*\.id\b", text), path.name
        assert not re.search(r"\.id\.split\(", text), path.name


def test_no_chapter_pastes_the_set_up_or_decides_a_verdict():
    for path in (ROOT / "book").rglob("*.md"):
        text = path.read_text()
        if not text.startswith("---\njupytext:"):
            continue
        assert "setup_chapter(" in text and "from flatrob.chapter import setup_chapter" in text, path.name
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
