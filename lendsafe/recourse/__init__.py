"""Verified recourse: the smallest changes, in the spec's units, that would have taken a denial to approval.

``find_recourse(scorer, application)`` returns a ``Recourse``: the application's own decision and up to a
few diverse options (different features), each the smallest change to one or a few *actionable* features
(``actionable = true`` with ``bounds`` in ``data/specs/*.toml``). Past records, ratings, derived ratios and
excluded (protected) columns never change; a ratio changes only through the field the applicant controls.

Why exact bisection, not dice-ml. The risk model is XGBoost with monotone constraints, so along one
actionable feature (moved in the direction that lowers risk, on the spec's step grid) the risk never
rises: the approval boundary is a single crossing, and bisection finds the first approving grid value
in about log2(grid size) model calls. That is exact (one step less still denies), deterministic and
takes milliseconds. Combinations keep the property coordinate-wise, so each feature of a combination is
bisected with the others fixed. dice-ml's model-agnostic methods (random sampling, genetic search,
KD-tree over training rows) ignore the constraints, give no minimality guarantee, are not deterministic
without a seed per query, take seconds per query and add a dependency tree, so they do not serve better
here; features the model does not constrain get a bounded grid instead (tried in full).

Proof. The search asks the scorer's own model; every option it keeps is then re-validated as an
application and re-scored through the same ``Scorer``, and that decision is part of the option. An option
that does not re-score as an approval is never returned (``Recourse.unproven`` counts them; expected 0).

Analysts see the options (``lendsafe recourse``, the explorer's "What would change it" panel). Applicants
see them only when the lender turns on ``RecourseSettings.educational_section`` (off by default), in
careful wording that the verifier's forbidden-phrase patterns check (``educational_section``).
"""
from __future__ import annotations

from lendsafe.recourse.axes import Axis, actionable_axes, risk_direction
from lendsafe.recourse.search import (DEFAULT_MAX_CHANGES, MAX_CHANGES, MAX_OPTIONS, Change, Option, Recourse,
                                      check_max_changes, find_recourse)
from lendsafe.recourse.wording import (ANALYST_NOTE, RecourseSettings, analyst_text, change_words,
                                       educational_section, noun, wording_problems)

__all__ = ["Axis", "Change", "Option", "Recourse", "RecourseSettings", "find_recourse", "actionable_axes",
           "risk_direction", "check_max_changes", "educational_section", "analyst_text", "change_words", "noun",
           "wording_problems", "ANALYST_NOTE", "DEFAULT_MAX_CHANGES", "MAX_CHANGES", "MAX_OPTIONS"]
