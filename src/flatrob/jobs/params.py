"""The book's chapters and their parameters: declared once, parsed once into typed rules, checked once.

**Parameters are declared once**, in the chapter's cell tagged ``parameters``: one assignment per line, its
comment saying what it is and, in square brackets at the end of the comment, what it accepts::

    epochs = 30  # training epochs [at least 1]
    attack_norm = "linf"  # the instrumented attack [one of: linf, l2]
    scales = [0.25, 1.0, 50.0]  # last-layer scales s [above 0; ascending; contains 1.0]
    dataset = "digits"  # the data [one of: DATASETS]

Rules, separated by ``;``: ``at least x``, ``above x``, ``at most x``, ``below x`` (for a list: every item),
``one of: a, b, c`` or ``one of: DATASETS | ARCHITECTURES | DEVICES`` (for a list: every item), ``ascending``,
``contains x``, ``starts at x``, ``may be empty``. The type is the default's: an integer parameter takes integers
(``1000``, ``1_000``, ``1e3``); a float parameter takes any number, written in any YAML or Python float syntax,
and never NaN or an infinity. Lists are never empty unless their rules say ``may be empty``. (The rules are
words, not ``>=``: papermill's own reader of parameters cells cannot parse a line with a second ``=``.)

:func:`parameter_spec` reads a chapter's cell without executing anything, into :class:`Parameter` objects whose
rules are parsed once (:class:`ParameterRule` subclasses); :func:`validate` checks a set of values against them and
against the machine (``device cuda`` needs CUDA; the data set must be on disk and fit the architecture) before anything
is computed.
"""

from __future__ import annotations

import ast
import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flatrob.evidence.records import Params, text
from flatrob.util.paths import book_dir, chapter_file, repo_root, toc_file

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "parameters_frame",
    "Parameter",
    "ParameterError",
    "ParameterRule",
    "chapter_path",
    "chapters",
    "parameter_spec",
    "parse_value",
    "validate",
]


class ParameterError(ValueError):
    """A chapter parameter that is unknown, of the wrong type, out of range, or impossible on this machine."""


# ---------------------------------------------------------------------------
# the chapters


def chapters() -> dict[str, Path]:
    """The chapters that can be run, by name (the file's stem), as paths relative to ``book/``, in book order.

    Read from ``_toc.yml``: every entry that is a MyST notebook.
    """
    import yaml

    root = repo_root()
    if not toc_file(root).is_file():
        raise ParameterError(
            f"no book found at {root}: run inside the repository (a folder with _config.yml, "
            "_toc.yml and book/) or set FLATROB_ROOT"
        )
    toc = yaml.safe_load(toc_file(root).read_text())
    files = [toc["root"]] + [c["file"] for part in toc.get("parts", []) for c in part.get("chapters", [])]
    out = {}
    for f in files:
        path = chapter_file(f, root)
        if path.is_file() and path.read_text().startswith("---\njupytext:"):
            out[Path(f).name] = Path(f"{f}.md")
    return out


def chapter_path(name: str) -> Path:
    """The MyST file of a chapter."""
    known = chapters()
    if name not in known:
        raise ParameterError(f"unknown chapter {name!r}; chapters: {', '.join(known)}")
    return book_dir() / known[name]


# ---------------------------------------------------------------------------
# rules, parsed once


def _named_choices(name: str) -> tuple[Any, ...]:
    if name == "DATASETS":
        from flatrob.data import DATASETS

        return DATASETS
    if name == "ARCHITECTURES":
        from flatrob.zoo import ARCHITECTURES

        return tuple(ARCHITECTURES)
    if name == "DEVICES":
        from flatrob.util.devices import DEVICES

        return DEVICES
    raise KeyError(name)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class ParameterRule:
    """One rule of a parameter, as written in its comment (``text``); :meth:`apply` raises on a value it refuses."""

    text: str

    def apply(self, where: str, value: Any) -> None:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def describe(self) -> str:
        return self.text


@dataclass(frozen=True)
class Bound(ParameterRule):
    """``at least x``, ``above x``, ``at most x``, ``below x``: for a list, every item."""

    op: str
    bound: float

    _OPS = {
        "at least": (">=", float.__ge__),
        "above": (">", float.__gt__),
        "at most": ("<=", float.__le__),
        "below": ("<", float.__lt__),
    }

    def apply(self, where: str, value: Any) -> None:
        sign, ok = self._OPS[self.op]
        items = value if isinstance(value, list) else [value]
        bad = [v for v in items if not ok(float(v), self.bound)]
        if bad:
            must = f"{where}: every item must be" if isinstance(value, list) else f"{where} must be"
            raise ParameterError(f"{must} {sign} {self.bound:g}; got {bad[0]!r}")


@dataclass(frozen=True)
class OneOf(ParameterRule):
    """``one of: a, b, c`` or a named set (``DATASETS``, ``ARCHITECTURES``, ``DEVICES``): for a list, every item."""

    choices: tuple[Any, ...]

    def apply(self, where: str, value: Any) -> None:
        items = value if isinstance(value, list) else [value]
        bad = [v for v in items if v not in self.choices]
        if bad:
            must = f"{where}: every item must be" if isinstance(value, list) else f"{where} must be"
            raise ParameterError(f"{must} one of {list(self.choices)}; got {bad[0]!r}")

    def describe(self) -> str:
        return f"one of: {', '.join(map(str, self.choices))}"


@dataclass(frozen=True)
class Ascending(ParameterRule):
    """``ascending``: a strictly ascending list."""

    def apply(self, where: str, value: Any) -> None:
        if list(value) != sorted(set(value)):
            raise ParameterError(f"{where} must be strictly ascending; got {value}")


@dataclass(frozen=True)
class Contains(ParameterRule):
    """``contains x``: a list holding x."""

    item: float

    def apply(self, where: str, value: Any) -> None:
        if self.item not in value:
            raise ParameterError(f"{where} must contain {self.item:g}; got {value}")


@dataclass(frozen=True)
class StartsAt(ParameterRule):
    """``starts at x``: a list whose first item is x."""

    item: float

    def apply(self, where: str, value: Any) -> None:
        if value[0] != self.item:
            raise ParameterError(f"{where} must start at {self.item:g}; got {value}")


@dataclass(frozen=True)
class MayBeEmpty(ParameterRule):
    """``may be empty``: a list that may be empty (lists are not, by default)."""

    def apply(self, where: str, value: Any) -> None:
        return None


_BOUND = re.compile(r"^(at least|above|at most|below)\s+(\S+)$")


def parse_rule(text: str) -> ParameterRule:
    """One rule from its words; raises ValueError for words no rule understands."""
    if (m := _BOUND.match(text)) and (bound := _number(m.group(2))) is not None:
        return Bound(text, m.group(1), bound)
    if text == "ascending":
        return Ascending(text)
    if text == "may be empty":
        return MayBeEmpty(text)
    if (m := re.fullmatch(r"(contains|starts at)\s+(\S+)", text)) and (item := _number(m.group(2))) is not None:
        return (Contains if m.group(1) == "contains" else StartsAt)(text, item)
    if text.startswith("one of:"):
        spec = text.split(":", 1)[1].strip()
        if re.fullmatch(r"[A-Z]+", spec):
            try:
                return OneOf(text, _named_choices(spec))
            except KeyError:
                raise ValueError(f"rule {text!r} names no known set of choices") from None
        words = [c.strip() for c in spec.split(",")]
        return OneOf(text, tuple(_coerce_number(c, bool(re.fullmatch(r"[+-]?[0-9]+", c))) for c in words))
    raise ValueError(f"rule {text!r} is not understood")


# ---------------------------------------------------------------------------
# parameters


@dataclass(frozen=True)
class Parameter:
    """One line of a parameters cell: name, default, what it is (``doc``) and what it accepts (``rules``)."""

    name: str
    default: Any
    doc: str
    rules: tuple[ParameterRule, ...]

    @property
    def may_be_empty(self) -> bool:
        return any(isinstance(r, MayBeEmpty) for r in self.rules)

    def describe(self) -> str:
        """The line as ``flatrob params`` prints it, with named choice sets spelled out."""
        rules = "; ".join(r.describe() for r in self.rules)
        comment = " ".join(filter(None, [self.doc, f"[{rules}]" if rules else ""]))
        return f"{self.name} = {self.default!r}" + (f"  # {comment}" if comment else "")

    def check(self, chapter: str, value: Any) -> Any:
        """``value`` typed as the default (numbers in any syntax) and checked against every rule."""
        where = f"parameter {self.name!r} of chapter {chapter!r}"
        default = self.default
        what = f"{_type_name(default)} (default {default!r})"
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ParameterError(f"{where} must be {what}; got {value!r}")
        elif isinstance(default, (int, float)):
            value = _check_number(where, value, isinstance(default, int), what)
        elif isinstance(default, list):
            if not isinstance(value, list):
                raise ParameterError(f"{where} must be {what}; got {value!r}")
            if not value and not self.may_be_empty:
                raise ParameterError(f"{where} must be a non-empty list; got []")
            if default and all(isinstance(v, str) for v in default):  # a list of words (its rules name the choices)
                bad = [v for v in value if not isinstance(v, str)]
                if bad:
                    raise ParameterError(f"{where} must be a list of words; got {bad[0]!r}")
                if len(set(value)) != len(value):
                    raise ParameterError(f"{where} must not repeat an item; got {value!r}")
            else:
                want_int = bool(default) and all(isinstance(v, int) and not isinstance(v, bool) for v in default)
                value = [
                    _check_number(where, v, want_int, "a list of " + ("integers" if want_int else "numbers"))
                    for v in value
                ]
        elif not isinstance(value, type(default)):
            raise ParameterError(f"{where} must be {what}; got {value!r}")
        for rule in self.rules:
            rule.apply(where, value)
        return value


_RULES = re.compile(r"^(.*?)\s*\[([^\[\]]*)\]\s*$")


def parameter_spec(name: str) -> dict[str, Parameter]:
    """The chapter's ``parameters`` cell, read without executing anything: {name: Parameter}.

    Read and parsed once per version of the file (validating a sweep's grid asks for it once per combination).
    """
    path = chapter_path(name)
    return dict(_parameter_spec(name, str(path), path.stat().st_mtime_ns))


@functools.lru_cache(maxsize=64)
def _parameter_spec(name: str, path: str, mtime_ns: int) -> dict[str, Parameter]:
    import jupytext

    nb = jupytext.read(path)
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise RuntimeError(f"chapter {name!r} must have exactly one cell tagged 'parameters'")
    source = cells[0].source
    lines = source.splitlines()
    out: dict[str, Parameter] = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise RuntimeError(f"chapter {name!r}: the parameters cell may only hold simple assignments")
        pname = node.targets[0].id
        line = lines[(node.end_lineno or node.lineno) - 1]
        comment = line.split("#", 1)[1].strip() if "#" in line else ""
        m = _RULES.match(comment)
        doc, words = (m.group(1), [r.strip() for r in m.group(2).split(";") if r.strip()]) if m else (comment, [])
        try:
            rules = tuple(parse_rule(w) for w in words)
            default = _literal(node.value)
        except ValueError as err:  # a fault of the chapter, not of the user's values
            raise RuntimeError(f"chapter {name!r}, parameter {pname!r}: {err}") from None
        out[pname] = Parameter(pname, default, doc, rules)
    return out


def _literal(node: ast.expr) -> Any:
    """A literal, or arithmetic on numbers (``8 / 255``), or a list of those: read without executing anything."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
        a, b = _literal(node.left), _literal(node.right)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b)):
            raise ValueError("arithmetic is allowed on numbers only")
        ops = {ast.Add: float.__add__, ast.Sub: float.__sub__, ast.Mult: float.__mul__, ast.Div: float.__truediv__}
        return ops[type(node.op)](float(a), float(b))
    if isinstance(node, ast.List):
        return [_literal(e) for e in node.elts]
    return ast.literal_eval(node)


def _type_name(v: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list"}
    return names.get(type(v), type(v).__name__)


def _coerce_number(value: Any, want_int: bool) -> Any:
    """A number written in any YAML or Python syntax ("1e-3", "1_000", "1e3") as int or float; anything else as it is.

    For an integer, a float with an integral value (1e3) is that integer; 2.5 stays a float (and is refused).
    """
    if isinstance(value, str):
        text = value.strip()
        if want_int and re.fullmatch(r"[+-]?[0-9_]+", text):
            return int(text)
        parsed = _number(text)
        if parsed is None:
            return value
        value = parsed
    if isinstance(value, bool):
        return value
    if want_int and isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if not want_int and isinstance(value, int):
        return float(value)
    return value


def _check_number(where: str, value: Any, want_int: bool, what: str) -> Any:
    value = _coerce_number(value, want_int)
    if want_int:
        if not (isinstance(value, int) and not isinstance(value, bool)):
            raise ParameterError(f"{where} must be {what}; got {value!r}")
        return value
    if not isinstance(value, float):
        raise ParameterError(f"{where} must be {what}; got {value!r}")
    if not math.isfinite(value):
        raise ParameterError(f"{where} must be a finite number; got {value!r}")
    return value


def parse_value(text: str) -> Any:
    """A command-line value: YAML scalars and lists (``40``, ``0.5``, ``1e-3``, ``-1e-3``, ``true``, ``[1, 2]``), else
    the string."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


# ---------------------------------------------------------------------------
# validation


def _check_machine(chapter: str, params: Mapping[str, object]) -> None:
    """Checks against this machine, before any compute: CUDA for ``device cuda``; the data set's files (present and
    intact); a data set whose inputs the architecture can take."""
    where = f"chapter {chapter!r}"
    if params.get("device") == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ParameterError(
                f"parameter 'device' of {where} is 'cuda' but CUDA is not available on this machine; "
                "use -p device auto (or cpu)"
            )
    if params.get("dataset") is None:
        return
    from flatrob.data import data_problem, input_shape

    dataset = text(params["dataset"])
    problem = data_problem(dataset, text(params.get("data_root") or "") or None)
    if problem:
        raise ParameterError(f"parameter 'dataset' of {where} is {dataset!r}: {problem}")
    if params.get("architecture") is not None:
        from flatrob.zoo import fits

        why = fits(text(params["architecture"]), input_shape(dataset))
        if why:
            raise ParameterError(f"parameters 'dataset' and 'architecture' of {where} do not fit: {why}")


def validate(chapter: str, values: Mapping[str, object]) -> Params:
    """Check parameter values for a chapter; return the complete parameter set (defaults filled in, numbers typed).

    Unknown names, wrong types, values outside the rules of the parameters cell and values this machine cannot run
    raise :class:`ParameterError`, with a message naming the parameter and what it accepts.
    """
    spec = parameter_spec(chapter)
    unknown = sorted(set(values) - set(spec))
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for chapter {chapter!r}; accepted: {', '.join(spec)}"
        )
    full = {k: p.default for k, p in spec.items()} | dict(values)
    checked = {k: spec[k].check(chapter, v) for k, v in full.items()}
    _check_machine(chapter, checked)
    return checked


def parameters_frame(name: str, values: Mapping[str, object]) -> pd.DataFrame:
    """A chapter's parameters as a reader's table, read from its ``parameters`` cell without executing it
    (:func:`parameter_spec`).

    Args:
        name: the chapter.
        values: this run's values (a missing name takes its default).

    Returns:
        One row per parameter, in the cell's order: ``parameter``, ``this run`` (radii as 255ths), ``default``
        (empty where this run keeps it) and ``what it is`` (the cell's comment, with what the value accepts).
    """
    import pandas as pd

    from flatrob.util.provenance import short_value

    rows = []
    for pname, spec in parameter_spec(name).items():
        value = values.get(pname, spec.default)
        rules = "; ".join(r.describe() for r in spec.rules)
        rows.append(
            {
                "parameter": pname,
                "this run": short_value(value),
                "default": "" if value == spec.default else short_value(spec.default),
                "what it is": " ".join(filter(None, [spec.doc, f"[{rules}]" if rules else ""])),
            }
        )
    return pd.DataFrame(rows)
