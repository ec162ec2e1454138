"""Held-out evaluation: what is measured (``config``), the held-out sample, per-decision records, the
writers compared, their summaries, the risk model and reasons (``model``), text similarity, the results
store, the typed results and their one reader (``results``), plots, the run and the quality gate.
"""
