"""Held-out evaluation: the risk model, the reasons, retrieval, the explanations of each writer and the
notices, with their results store, plots and the quality gate.
"""
