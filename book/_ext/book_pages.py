"""Adjustments of the book's pages (loaded as a local extension from _config.yml).

* MathJax on every page, not only on pages whose source holds math: cell outputs (tables of the claims with
  their statements in \\( ... \\)) need it too.
* The repository, source and issue buttons and the launch links (Binder, Colab) follow the one repository
  URL of _config.yml: on when it is set (as the Pages workflow does), off for a local build, instead of an error.
* Every chapter's page offers its executed notebook (.ipynb) in the download menu, beside its MyST source,
  with or without a repository URL.
* The pages that summarise the others (the reproduction report) are read, and so executed, last: they read the
  ledger the chapters write during the same build.
* In the PDF, the introduction is front matter: its sections are not chapters (so that chapter, equation and
  theorem numbers are those of the web book), and a proof's title bar says "Proof".
"""

from pathlib import Path
from shutil import copy2

from docutils import nodes

#: Pages that read what the other pages computed in the same build: read (and executed) after all the others.
LAST = ("reproduction",)


def _follow_repository_url(app, config):
    options = config.html_theme_options
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


def setup(app):
    app.set_html_assets_policy("always")
    app.connect("config-inited", _follow_repository_url)
    app.connect("html-page-context", _offer_executed_notebook, priority=400)  # before the theme's buttons (501)
    app.connect("env-before-read-docs", _summaries_last)
    app.connect("doctree-resolved", _introduction_as_front_matter)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
