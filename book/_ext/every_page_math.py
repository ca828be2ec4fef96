"""Load MathJax on every page, not only on pages whose source holds math: cell outputs (tables of the claims with
their statements in \\( ... \\)) need it too."""


def setup(app):
    app.set_html_assets_policy("always")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
