"""The book's utilities: where things live (:mod:`~flatrob.util.paths`), what made a result
(:mod:`~flatrob.util.provenance`), devices and threads, safe writes and progress bars. Nothing here knows a claim."""
