"""Score applications and name their principal reasons: the first half of every ``Decision``."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from lendsafe.decide.application import parse_application
from lendsafe.config import Settings
from lendsafe.decide.datasets import matrix_from_records, with_derived
from lendsafe.decide.decision import Decision
from lendsafe.decide.reasons import (
    check_additivity, check_reference, grouped_by_features, reasons_for, relative_contributions, select_reasons,
)
from lendsafe.decide.risk import RiskModel, model_dir


class Scorer:
    """A loaded risk model that turns validated applications into decisions with reasons."""

    def __init__(self, model: RiskModel):
        self.model = model
        self.spec = model.spec
        self._model_info = {"dataset": self.spec.name, "sha256": model.sha256,
                            "threshold_version": self.spec.threshold_version}

    @classmethod
    def load(cls, dataset: str = "hmda", settings: Settings | None = None) -> "Scorer":
        return _cached_scorer(str(model_dir(dataset, settings)))

    def matrix(self, applications: list[dict[str, Any]]) -> np.ndarray:
        return matrix_from_records(self.spec, applications)

    def score(self, application: dict[str, Any], reference: str = "population") -> Decision:
        return self.score_many([application], reference)[0]

    def score_many(self, applications: list[dict[str, Any]], reference: str = "population") -> list[Decision]:
        """Validate, score and explain a batch (one TreeSHAP call for all rows)."""
        check_reference(reference)
        validated = [parse_application(a, self.spec) for a in applications]
        if not validated:
            return []
        X = self.matrix(validated)
        contribs, margin = self.model.contributions_and_margin(X)   # the model's own output decides
        check_additivity(contribs, margin)
        relative = relative_contributions(contribs, self.model.reference_vector(reference))
        features, by_feature = grouped_by_features(self.spec, relative)
        risk = 1.0 / (1.0 + np.exp(-margin))
        return [self._decision(app, r, dict(zip(features, row)), reference)
                for app, r, row in zip(validated, risk.tolist(), by_feature.round(6).tolist())]

    def _decision(self, application: dict[str, Any], risk: float, contributions: dict[str, float],
                  reference: str) -> Decision:
        denied = risk >= self.model.threshold
        reasons, dropped = (), ()
        if denied:
            values = with_derived(self.spec, application)
            selection = select_reasons(self.spec, values, contributions, self.model.reference_values(reference))
            eligible = {f: c for f, c in contributions.items()
                        if f not in {d["feature"] for d in selection.dropped}}
            reasons, dropped = reasons_for(self.spec, values, selection.ranked, eligible), selection.dropped
        return Decision(application=application, dataset=self.spec.name,
                        decision="deny" if denied else "approve", risk=risk, threshold=self.model.threshold,
                        reference=reference, reasons=reasons, contributions=contributions,
                        model=dict(self._model_info), dropped=dropped)


@lru_cache(maxsize=8)
def _cached_scorer(directory: str) -> Scorer:
    return Scorer(RiskModel.load(Path(directory)))
