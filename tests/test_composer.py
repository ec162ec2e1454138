"""The deterministic writer: faithful by construction on real decisions, phrasing driven by content."""
from __future__ import annotations

import json

import pytest

from lendsafe.explain.composer import FEATURE_PHRASES, ComposerWriter, compose, opening, reason_phrase, reason_sentences
from lendsafe.config import PROJECT_ROOT
from lendsafe.decide.datasets import load_dataset
from lendsafe.decide.specs import load_spec
from lendsafe.decide.risk import RiskModel, model_dir
from lendsafe.decide.scoring import Scorer
from passages import citations
from lendsafe.explain.verify import verify

CITATIONS = citations()


def held_out_applications(dataset: str, limit: int) -> list[dict]:
    """Applications of the risk model's test split (never its training rows)."""
    spec, model = load_spec(dataset), RiskModel.load(model_dir(dataset))
    frame = load_dataset(dataset).applications
    inputs = [f.name for f in spec.input_fields]
    rows = frame.iloc[sorted(int(i) for i in model.test_index_)[:limit]][inputs]
    records = rows.astype(object).where(rows.notna(), None).to_dict("records")
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in records]


@pytest.fixture(scope="module", params=["hmda", "credit"])
def decisions(request):
    dataset = request.param
    scorer = Scorer.load(dataset)
    apps = held_out_applications(dataset, 400)
    both = scorer.score_many(apps, "population") + scorer.score_many(apps, "cutoff")
    return [d.with_updates(citations=CITATIONS) for d in both]


def test_every_composed_text_passes_every_check(decisions):
    failures = [(d.reasons, compose(d), verify(d, compose(d)).failures) for d in decisions
                if not verify(d, compose(d)).passed]
    assert not failures, failures[:3]
    assert any(d.denied for d in decisions) and any(not d.denied for d in decisions)


def test_composition_is_deterministic_and_varies_with_content(decisions):
    denials = [d for d in decisions if d.denied]
    assert [compose(d) for d in denials] == [compose(d) for d in denials]
    by_count = {len(d.reasons): opening(d) for d in denials}
    assert len(set(by_count.values())) == len(by_count) >= 2
    by_first_reason = {d.reasons[0].code: reason_sentences(d)[0] for d in denials}
    assert len(set(by_first_reason.values())) == len(by_first_reason)


def test_each_reason_phrase_carries_the_applicants_figure(decisions):
    for decision in (d for d in decisions if d.denied):
        for reason in decision.reasons:
            phrase = reason_phrase(decision.dataset, reason)
            template = FEATURE_PHRASES[reason.feature]
            if "{v}" in template and reason.display_value not in ("not provided",) and isinstance(reason.value, (int, float)) \
                    and not isinstance(reason.value, bool):
                assert reason.display_value in phrase, (reason, phrase)


def test_every_model_feature_has_a_phrase():
    for dataset in ("hmda", "credit"):
        spec = load_spec(dataset)
        assert {f.name for f in spec.model_features} <= set(FEATURE_PHRASES), dataset


def test_approval_text_and_template_generator():
    application = json.loads((PROJECT_ROOT / "data" / "examples" / "hmda_approval.json").read_text())
    decision = Scorer.load("hmda").score(application)
    text = compose(decision)
    assert not decision.denied and "approve" in text and verify(decision, text).passed
    assert [r.text for r in ComposerWriter().write([decision, decision], [[], []])] == [text, text]


def test_the_rights_part_follows_the_decisions_information_sources(decisions):
    from lendsafe.explain.grounding import RIGHTS, information_sources

    dispute = next(r.sentence for r in RIGHTS if r.key == "dispute")
    third_party = next(r.sentence for r in RIGHTS if r.key == "third_party")
    for decision in (d for d in decisions if d.denied):
        sources = information_sources(decision)
        assert (dispute in compose(decision)) == ("consumer_report" in sources)
        assert (third_party in compose(decision)) == ("third_party" in sources)


def test_no_text_cites_a_sample_form_or_says_what_requires_it(decisions):
    for decision in (d for d in decisions if d.denied):
        text = compose(decision)
        assert "as required by" not in text and "App. C" not in text and "comment" not in text


def test_coded_values_are_described_with_their_own_levels_meaning(decisions):
    for decision in (d for d in decisions if d.denied):
        spec = load_spec(decision.dataset)
        for reason in decision.reasons:
            feature = spec.feature(reason.feature)
            if feature.levels and feature.type in ("int", "category") and reason.value is not None:
                assert feature.level_text(reason.value) in compose(decision), reason


def test_a_missing_value_is_stated_as_missing_without_a_figure():
    application = json.loads((PROJECT_ROOT / "data" / "examples" / "credit_denial.json").read_text())
    decision = Scorer.load("credit").score({**application, "income": None})
    [income] = [r for r in decision.reasons if r.feature == "income"]
    assert reason_phrase("credit", income) == "the absence of a stated monthly income from your application"


def test_a_denial_without_an_adverse_reason_is_refused_not_written():
    from lendsafe.errors import LendSafeError

    application = json.loads((PROJECT_ROOT / "data" / "examples" / "hmda_denial.json").read_text())
    decision = Scorer.load("hmda").score(application).with_updates(reasons=())
    with pytest.raises(LendSafeError, match="no principal reason"):
        compose(decision)
