"""The book's judgement: the paper's claims (:mod:`~flatrob.evidence.claims`), the verdict machinery
(:mod:`~flatrob.evidence.verdicts`), one check function per claim (:mod:`~flatrob.evidence.checks`), the ledger
of verdicts per setting, the comparison of a build with the committed evidence, the report and the findings in
words. The library (flatness, attacks, models, ...) imports nothing from here."""
