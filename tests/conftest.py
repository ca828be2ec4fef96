import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture()
def tmp_cache(tmp_path, monkeypatch):
    """A private checkpoint cache, so tests never read or write the user's."""
    monkeypatch.setenv("FLATROB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"
