"""Shared pieces of the review tests: the example denial decided by the composer, a store, a reviewer,
and texts that pass or fail the verifier."""
from __future__ import annotations

import json

import pytest

from lendsafe.audit.store import AuditStore
from lendsafe.config import PROJECT_ROOT, Settings
from lendsafe.explain.pipeline import Pipeline
from lendsafe.review import Reviewer, ReviewPolicy

EXAMPLES = PROJECT_ROOT / "data" / "examples"


def example(name: str) -> dict:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def pipeline():
    return Pipeline(Settings(use_llm=False))


@pytest.fixture(scope="module")
def denial(pipeline):
    return pipeline.run(example("hmda_denial"))


@pytest.fixture
def store(tmp_path):
    with AuditStore(f"sqlite:///{tmp_path / 'audit.db'}") as audit:
        yield audit


@pytest.fixture
def reviewer(store):
    return Reviewer(store, policy=ReviewPolicy())


def other_denial(decision, number: int):
    """The same decision for another application id (a distinct item)."""
    application = {**decision.application, "application_id": f"HMDA-REVIEW-{number:04d}"}
    return decision.with_updates(application=application)


def failing_text(decision) -> str:
    """The draft with a promise in it (the verifier's forbidden-phrase check fails)."""
    return decision.explanation.replace("We cannot approve", "We are guaranteed to not approve", 1)


def passing_text(decision) -> str:
    """The draft reworded without changing what it says."""
    edited = decision.explanation.replace("weighed most", "counted most", 1)
    assert edited != decision.explanation
    return edited
