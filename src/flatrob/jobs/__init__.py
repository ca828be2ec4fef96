"""How the chapters run: their parameters and rules (:mod:`~flatrob.jobs.params`), one run of a chapter
(:mod:`~flatrob.jobs.run`), sweeps over seeds and settings (:mod:`~flatrob.jobs.sweep`) and what a chapter
calls
(:mod:`~flatrob.jobs.chapter`)."""
