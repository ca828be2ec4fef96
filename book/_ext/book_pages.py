"""Three adjustments of the book's pages (loaded as a local extension from _config.yml).

* MathJax on every page, not only on pages whose source holds math: cell outputs (tables of the claims with
  their statements in \\( ... \\)) need it too.
* The repository, source and issue buttons and the launch links (Binder, Colab) follow the one repository
  URL of _config.yml: on when it is set (as the Pages workflow does), off for a local build, instead of an error.
* Every chapter's page offers its executed notebook (.ipynb) in the download menu, beside its MyST source,
  with or without a repository URL.
"""

from pathlib import Path
from shutil import copy2


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


def setup(app):
    app.set_html_assets_policy("always")
    app.connect("config-inited", _follow_repository_url)
    app.connect("html-page-context", _offer_executed_notebook, priority=400)  # before the theme's buttons (501)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
