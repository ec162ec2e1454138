"""LendSafe: explainable adverse-action notices.

``from lendsafe import Pipeline, Issuer, Decision``; ``Pipeline(dataset="hmda", reference="population").run(application)``
returns the ``Decision`` (score, principal reasons, verified explanation). ``Issuer`` makes the notice
and its audit record. Names load on first use, so ``import lendsafe`` stays fast.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {"Pipeline": "lendsafe.explain.pipeline", "Decision": "lendsafe.decide.decision",
            "Reason": "lendsafe.decide.decision", "Issuer": "lendsafe.issue.issuer", "verify": "lendsafe.explain.verify",
            "Scorer": "lendsafe.decide.scoring"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lendsafe' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
