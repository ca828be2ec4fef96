"""Adjustments of the book's pages (loaded as a local extension from _config.yml).

* MathJax on every page, not only on pages whose source holds math: cell outputs (tables of the claims with
  their statements in \\( ... \\)) need it too.
* The repository, source and issue buttons and the launch links (Binder, Colab) follow the one repository
  URL (``$FLATROB_REPOSITORY_URL``, which the Pages workflow sets, or ``repository.url`` of _config.yml): on when
  it is set, off for a local build, instead of an error.
* Every chapter's page offers its executed notebook (.ipynb) in the download menu, beside its MyST source,
  with or without a repository URL.
* The pages that summarise the others (the reproduction report) are read, and so executed, last: they read the
  ledger the chapters write during the same build.
* The bibliography is labelled the way the text cites: "Walter et al., 2026", not [WAVK26] (the pybtex style
  "authoryear", used by references.md).
* In the PDF, the introduction is front matter: its sections are not chapters (so that chapter, equation and
  theorem numbers are those of the web book), and a proof's title bar says "Proof"; the library's tables are
  LaTeX tables, not display math; the References page, whose bibliography LaTeX prints at the end of the book,
  is not an empty chapter.
* The proof index lists each definition, lemma, theorem... by its title, grouped by kind, with its chapter
  (sphinx-proof's own index lists raw labels, ``lem-bridging``, twice each).
"""

import os
from pathlib import Path
from shutil import copy2

from docutils import nodes
from sphinx.domains import IndexEntry

#: Pages that read what the other pages computed in the same build: read (and executed) after all the others.
LAST = ("reproduction",)
#: The repository's URL for the repository, source and issue buttons and the launch links (the Pages workflow sets
#: it); it overrides ``repository.url`` of _config.yml.
REPOSITORY_ENV = "FLATROB_REPOSITORY_URL"


def _follow_repository_url(app, config):
    options = config.html_theme_options
    url = os.environ.get(REPOSITORY_ENV, "").strip()
    if url:  # the Pages workflow names the repository it runs in, without editing _config.yml (the tree stays clean)
        options["repository_url"] = url
    on = bool(options.get("repository_url"))
    for key in ("use_repository_button", "use_issues_button", "use_source_button"):
        options[key] = on
    if not on:  # the theme's launch links need a repository; without one they would fail the build
        options["launch_buttons"] = {}


def _offer_executed_notebook(app, pagename, templatename, context, doctree):
    """Copy the executed notebook of a MyST notebook page next to its source, for the download menu."""
    if "kernelspec" not in app.env.metadata.get(pagename, {}):
        return
    executed = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    if not executed.exists():
        return
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    copy2(executed, target)
    context["ipynb_source"] = f"{pagename}.ipynb"


def _summaries_last(app, env, docnames):
    """Move the summary pages to the end of the reading order (in place, as Sphinx asks)."""
    for name in LAST:
        if name in docnames:
            docnames.remove(name)
            docnames.append(name)


def _proof_titles(app, doctree, docname):
    """For LaTeX only: a proof box (sphinx-proof's untitled admonition, whose text starts "Proof. ") gets the title
    "Proof", so that its title bar is not empty."""
    if app.builder.format != "latex":
        return
    for box in doctree.findall(nodes.admonition):
        if "proof" not in box.get("classes", []) or (box.children and isinstance(box[0], nodes.title)):
            continue
        box.insert(0, nodes.title("Proof", "Proof"))
        first = next(iter(box.findall(nodes.Text)), None)
        if first is not None and str(first).startswith("Proof. "):
            first.parent.replace(first, nodes.Text(str(first)[len("Proof. ") :]))


def _latex_tables(app, doctree, docname):
    """For LaTeX only: MyST-NB renders every ``text/latex`` cell output as display math, in which a table cannot
    sit; an output that holds a ``longtable`` (the tables of ``flatrob.tables.show``) goes in as raw LaTeX."""
    if app.builder.format != "latex":
        return
    for block in list(doctree.findall(nodes.math_block)):
        text = block.astext()
        if "text_latex" in block.get("classes", []) and "\\begin{longtable}" in text:
            block.replace_self(nodes.raw("", text + "\n", format="latex"))


def _root_reread_for_latex(app, env, added, changed, removed):
    """For LaTeX only: the root page is read again, so that :func:`_parts_from_captions` sees its tables of contents
    even when an HTML build has read it before (``make pdf`` after ``make book``)."""
    return [app.config.root_doc] if app.builder.format == "latex" else []


def _parts_from_captions(app, doctree):
    """For LaTeX only, when the root page is read (later, the LaTeX builder replaces its tables of contents by the
    pages they list, captions and all): each captioned table of contents (Theory, Experiments, Back matter) starts
    a part."""
    if app.builder.format != "latex" or app.env.docname != app.config.root_doc:
        return
    from sphinx import addnodes

    for toc in list(doctree.findall(addnodes.toctree)):
        caption = toc.get("caption")
        if not caption:
            continue
        anchor = toc.parent if isinstance(toc.parent, nodes.compound) else toc
        anchor.parent.insert(anchor.parent.index(anchor), nodes.raw("", f"\\part{{{caption}}}\n", format="latex"))


def _introduction_as_front_matter(app, doctree, docname):
    """For LaTeX only: the root page's sections become rubrics, so they are not numbered chapters before part I."""
    if app.builder.format != "latex" or docname != app.config.root_doc:
        return
    top = next(iter(doctree.findall(nodes.section)), None)
    if top is None:
        return
    for section in [s for s in top.children if isinstance(s, nodes.section)]:
        title = section[0] if section.children and isinstance(section[0], nodes.title) else None
        replacement = [nodes.rubric(title.astext(), title.astext())] if title is not None else []
        replacement += [child for child in section.children if child is not title]
        section.replace_self(replacement)


def _record_proof_titles(app, doctree):
    """Remember each labelled box's kind and title (sphinx-proof keeps only the label), for the titled proof index
    (:func:`_titled_proof_index`)."""
    titles = _proof_titles_of(app.env)
    for node in doctree.findall(nodes.Element):
        if node.get("label") and "realtype" in node.attributes:
            title = str(node.get("title", "")).strip()
            if title.startswith("(") and title.endswith(")"):
                title = title[1:-1]
            plain = title.replace("$", "").replace("\\", "").strip()
            titles[node["label"]] = (node["realtype"], plain, app.env.docname)


def _proof_titles_of(env):
    if not hasattr(env, "flatrob_proof_titles"):
        env.flatrob_proof_titles = {}
    return env.flatrob_proof_titles


def _purge_proof_titles(app, env, docname):
    titles = _proof_titles_of(env)
    for label in [k for k, v in titles.items() if v[2] == docname]:
        del titles[label]


def _merge_proof_titles(app, env, docnames, other):
    _proof_titles_of(env).update(getattr(other, "flatrob_proof_titles", {}))


def _titled_proof_index():
    """sphinx-proof's index with titles: one group per kind (Corollaries, Definitions, ...), each box by its title
    and its chapter, sorted by title."""
    from sphinx_proof.domain import ProofIndex

    plural = {"proof": "Proofs", "theorem": "Theorems", "lemma": "Lemmas", "corollary": "Corollaries",
              "definition": "Definitions", "proposition": "Propositions"}  # fmt: skip

    class TitledProofIndex(ProofIndex):
        def generate(self, docnames=None):
            env = self.domain.env
            titles = _proof_titles_of(env)
            groups = {}
            for label, values in getattr(env, "proof_list", {}).items():
                if not label or (docnames and values["docname"] not in docnames):
                    continue
                kind, title, _ = titles.get(label, (values["realtype"], "", values["docname"]))
                chapter = env.titles[values["docname"]].astext() if values["docname"] in env.titles else ""
                entry = IndexEntry(title or label, 0, values["docname"], label, chapter, "", "")
                groups.setdefault(plural.get(kind, kind.capitalize()), []).append(entry)
            return [(k, sorted(v, key=lambda e: e.name.lower())) for k, v in sorted(groups.items())], False

    return TitledProofIndex


def _prints_nothing(node):
    """Whether LaTeX prints nothing where this node stands: citations (gathered into the bibliography at the end of
    the book), targets, comments, and containers of only those."""
    if isinstance(node, (nodes.citation, nodes.target, nodes.comment)):
        return True
    return isinstance(node, (nodes.container, nodes.compound)) and all(_prints_nothing(c) for c in node.children)


def _no_empty_chapter(app, doctree, docname):
    """For LaTeX only: a chapter whose whole content LaTeX moves elsewhere (the References page: Sphinx has gathered
    its citations into the bibliography at the end of the book before this event) would be an empty page; its title
    goes, and whatever prints nothing stays."""
    if app.builder.format != "latex" or docname != app.config.root_doc:
        return
    from sphinx import addnodes

    for start in list(doctree.findall(addnodes.start_of_file)):
        for section in [c for c in start.children if isinstance(c, nodes.section)]:
            body = [c for c in section.children if not isinstance(c, nodes.title)]
            if all(_prints_nothing(c) for c in body):  # by now Sphinx has moved the citations to the end
                at = start.index(section)
                start[at : at + 1] = body  # its label goes with it: nothing refers to an empty chapter


def _author_year_style():
    """A pybtex formatting style: the alpha style's entries with author-year labels (a, b for clashes)."""
    from collections import Counter

    from pybtex.style.formatting.alpha import Style as AlphaStyle
    from pybtex.style.labels import BaseLabelStyle

    def names(entry):
        last = [" ".join(p.last_names).replace("{", "").replace("}", "") for p in entry.persons.get("author", [])]
        if len(last) > 2:
            return f"{last[0]} et al."
        return " and ".join(last) or entry.fields.get("title", "Anonymous")[:20]

    class AuthorYear(BaseLabelStyle):
        def format_labels(self, sorted_entries):
            entries = list(sorted_entries)
            plain = [f"{names(e)}, {e.fields.get('year', 'n.d.')}" for e in entries]
            counts, seen = Counter(plain), Counter()
            for label in plain:
                if counts[label] > 1:
                    seen[label] += 1
                    yield label + "abcdefghij"[seen[label] - 1]
                else:
                    yield label

    class Style(AlphaStyle):
        default_label_style = AuthorYear

    return Style


def setup(app):
    app.set_html_assets_policy("always")
    from pybtex.plugin import register_plugin

    register_plugin("pybtex.style.formatting", "authoryear", _author_year_style())
    app.connect("config-inited", _follow_repository_url)
    app.connect("html-page-context", _offer_executed_notebook, priority=400)  # before the theme's buttons (501)
    app.connect("env-before-read-docs", _summaries_last)
    app.connect("env-get-outdated", _root_reread_for_latex)
    app.connect("doctree-read", _parts_from_captions)
    app.connect("doctree-resolved", _introduction_as_front_matter)
    app.connect("doctree-resolved", _proof_titles)
    app.connect("doctree-resolved", _latex_tables)
    app.connect("doctree-resolved", _no_empty_chapter)
    app.connect("doctree-read", _record_proof_titles)
    app.connect("env-purge-doc", _purge_proof_titles)
    app.connect("env-merge-info", _merge_proof_titles)
    from sphinx_proof.domain import ProofDomain

    ProofDomain.indices = [_titled_proof_index()]
    return {"parallel_read_safe": True, "parallel_write_safe": True}
