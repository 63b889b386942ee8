"""The steps a run's effects name, one module per phase of work (the table is in the runner).

A step is ``async (RunContext, RunRecord) -> Outcome | None``: work steps return the event
that ends their phase; announcing steps (a gate, the end) return None. No step imports the
runner: a step only has its context.
"""
