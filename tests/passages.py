"""Real corpus passages as retrieved citations, for tests that need a decision's passages without ranking."""
from __future__ import annotations

from functools import lru_cache

from lendsafe.config import PROJECT_ROOT
from lendsafe.decide.decision import Citation
from lendsafe.knowledge.retrieval import load_corpus

# What a denial retrieves for its rights and requirements (ECOA notice, specific reasons, FCRA 615(a)/(b)).
DENIAL_PASSAGES = ("reg-b-1002-9-b-1", "reg-b-1002-9-b-2", "fcra-615a", "fcra-615a-4", "fcra-615b")


@lru_cache(maxsize=1)
def _corpus() -> dict:
    return {p.id: p for p in load_corpus(PROJECT_ROOT / "data" / "regulations")}


def citations(*ids: str) -> tuple[Citation, ...]:
    corpus = _corpus()
    return tuple(Citation(corpus[i].citation, corpus[i].title, corpus[i].text, 1.0, corpus[i].id)
                 for i in (ids or DENIAL_PASSAGES))
