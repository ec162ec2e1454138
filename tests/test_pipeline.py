"""Pipeline: scoring -> retrieval -> LoRA writer -> verification -> stricter retry -> composer fallback."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from lendsafe.explain.composer import compose
from lendsafe.config import PROJECT_ROOT, Settings
from lendsafe.errors import LendSafeError
from lendsafe.explain.pipeline import Pipeline
from lendsafe.explain.verify import verify
from lendsafe.explain.writer import Writer

EXAMPLES = PROJECT_ROOT / "data" / "examples"


def example(name: str) -> dict:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


@dataclass
class Result:
    text: str
    latency_ms: float = 5.0
    cached: bool = False


class ScriptedGenerator:
    """Stands in for the LoRA writer: answers each attempt with a scripted text (or the faithful one)."""

    name = "lora"

    def __init__(self, *scripts):
        self.scripts = list(scripts)        # one callable per attempt: decision prompt -> text
        self.calls: list[int] = []

    def write(self, decisions, prompts):
        assert len(decisions) == len(prompts)
        self.calls.append(len(prompts))
        script = self.scripts[min(len(self.calls), len(self.scripts)) - 1]
        return [Result(script(prompt)) for prompt in prompts]

    def describe(self):
        return {"adapter_sha256": "ab" * 32, "base_sha256": "cd" * 32}


@pytest.fixture(scope="module")
def knowledge():
    from lendsafe.knowledge.retrieval import KnowledgeBase

    return KnowledgeBase(Settings())


@pytest.fixture(scope="module")
def faithful_text(knowledge):
    """The composer's text for the example denial, used as a 'good model answer'."""
    decision = Pipeline(Settings(use_llm=False), knowledge=knowledge).run(example("hmda_denial"))
    return decision.explanation


def pipeline_with(generator, knowledge, writer="auto"):
    return Pipeline(Settings(), writer=writer, generator=generator, knowledge=knowledge)


def test_both_writers_meet_the_writer_protocol():
    from lendsafe.explain.composer import ComposerWriter
    from lendsafe.explain.generation import LoraGenerator

    assert isinstance(ComposerWriter(), Writer) and isinstance(ScriptedGenerator(), Writer)
    assert LoraGenerator.name == "lora" and callable(LoraGenerator.write) and callable(LoraGenerator.describe)


def test_the_composer_writes_through_the_protocol_for_the_fallback(knowledge):
    from lendsafe.explain.composer import ComposerWriter
    from lendsafe.explain.prompts import build_messages, messages_sha256

    decision = Pipeline(Settings(use_llm=False), knowledge=knowledge).run(example("hmda_denial"))
    prompt = build_messages(decision)
    (result,) = ComposerWriter().write([decision], [prompt])
    assert result.text == compose(decision) == decision.explanation and result.prompt_sha256 == messages_sha256(prompt)
    assert not result.cached and result.draft_tokens_accepted is None


def test_a_verified_first_answer_is_used(knowledge, faithful_text):
    generator = ScriptedGenerator(lambda p: faithful_text)
    decision = pipeline_with(generator, knowledge).run(example("hmda_denial"))
    assert decision.writer == "lora" and decision.explanation == faithful_text
    assert decision.writer_reason == "passed verification on the first attempt" and generator.calls == [1]
    assert decision.verification["passed"] and len(decision.verification["attempts"]) == 1
    assert decision.artifacts["adapter_sha256"] == "ab" * 32 and decision.artifacts["catalog_sha256"]
    assert decision.artifacts["model_sha256"] == decision.model["sha256"] and decision.artifacts["corpus_sha256"]


def test_a_failing_answer_gets_one_stricter_retry(knowledge, faithful_text):
    generator = ScriptedGenerator(lambda p: faithful_text + " You may reapply in 90 days.", lambda p: faithful_text)
    decision = pipeline_with(generator, knowledge).run(example("hmda_denial"))
    assert decision.writer == "lora" and "stricter retry" in decision.writer_reason
    first, second = decision.verification["attempts"]
    assert not first["passed"] and "no_forbidden_phrase" in first["failures"] and not first["strict"]
    assert second["passed"] and second["strict"]


def test_two_failures_fall_back_to_the_composer_and_say_why(knowledge):
    generator = ScriptedGenerator(lambda p: "We cannot approve your mortgage because of your age and your score.")
    decision = pipeline_with(generator, knowledge).run(example("hmda_denial"))
    assert decision.writer == "template" and decision.explanation == compose(decision.with_updates(explanation=None))
    assert "failed verification twice" in decision.writer_reason and "no_protected_basis" in decision.writer_reason
    assert generator.calls == [1, 1] and len(decision.verification["attempts"]) == 2
    assert verify(decision, decision.explanation).passed


def test_the_strict_retry_prompt_differs_and_is_recorded(knowledge, faithful_text):
    seen = []
    generator = ScriptedGenerator(lambda p: seen.append(p) or "Bad.", lambda p: seen.append(p) or faithful_text)
    decision = pipeline_with(generator, knowledge).run(example("hmda_denial"))
    assert "Rules: mention exactly" in seen[1][1]["content"] and "Rules:" not in seen[0][1]["content"]
    from lendsafe.explain.prompts import messages_sha256

    assert decision.prompt_sha256 == messages_sha256(seen[1])


def test_batches_generate_once_per_attempt_and_retry_only_the_failures(knowledge, faithful_text):
    apps = [example("hmda_denial"), example("hmda_approval"), example("hmda_denial")]
    approval_text = Pipeline(Settings(use_llm=False), knowledge=knowledge).run(apps[1]).explanation
    answers = iter([faithful_text, "Nonsense.", "Nonsense."])
    generator = ScriptedGenerator(lambda p: next(answers), lambda p: approval_text)
    decisions = pipeline_with(generator, knowledge).run_many(apps)
    assert generator.calls == [3, 2]
    assert [d.writer for d in decisions] == ["lora", "lora", "template"]


def test_an_unavailable_model_falls_back_in_auto_and_fails_loudly_when_required(knowledge, monkeypatch):
    import lendsafe.explain.pipeline as pipeline_module

    def unavailable(*args, **kwargs):
        raise LendSafeError("adapter folder not found")

    monkeypatch.setattr(pipeline_module, "LoraGenerator", unavailable)
    decision = Pipeline(Settings(), knowledge=knowledge).run(example("hmda_denial"))
    assert decision.writer == "template" and "language model unavailable" in decision.writer_reason
    with pytest.raises(LendSafeError, match="adapter folder not found"):
        Pipeline(Settings(), writer="lora", knowledge=knowledge).run(example("hmda_denial"))


def test_template_writer_never_loads_the_model(knowledge):
    pipeline = Pipeline(Settings(dataset="credit"), writer="template", knowledge=knowledge)
    decision = pipeline.run(example("credit_denial"))
    assert decision.writer == "template" and pipeline.generator() is None and decision.verification["passed"]
    assert decision.writer_reason == "deterministic writer selected"


def test_nothing_is_issued_when_even_the_final_text_fails(knowledge, monkeypatch):
    import lendsafe.explain.composer as composer_module

    monkeypatch.setattr(composer_module, "compose", lambda decision: "We guarantee approval next time.")
    with pytest.raises(LendSafeError, match="nothing was issued"):
        Pipeline(Settings(use_llm=False), knowledge=knowledge).run(example("hmda_denial"))


def test_citations_come_from_retrieval_and_the_reference_is_honoured(knowledge):
    pipeline = Pipeline(Settings(use_llm=False), knowledge=knowledge)
    population, cutoff = pipeline.run(example("hmda_denial")), pipeline.run(example("hmda_denial"), "cutoff")
    assert population.reference == "population" and cutoff.reference == "cutoff"
    cited = {c.citation for c in population.citations}
    assert any("1002.9" in c for c in cited) and any("1681m" in c for c in cited)
    assert all(r.citation for r in population.reasons)


def test_bad_writer_and_bad_application_are_refused(knowledge):
    from lendsafe.errors import InvalidApplicationError

    with pytest.raises(LendSafeError, match="writer must be one of"):
        Pipeline(Settings(), writer="gpt")
    with pytest.raises(InvalidApplicationError) as error:
        Pipeline(Settings(use_llm=False), knowledge=knowledge).run({**example("hmda_denial"), "debt_to_income": -1})
    assert any("debt_to_income" in p for p in error.value.problems)


def test_the_public_entry_runs_an_application_dict(knowledge):
    from lendsafe import Decision, Pipeline as PublicPipeline

    assert PublicPipeline is Pipeline
    decision = PublicPipeline(Settings(use_llm=False), dataset="credit", reference="cutoff", knowledge=knowledge).run(
        example("credit_denial"))
    assert isinstance(decision, Decision) and decision.dataset == "credit" and decision.reference == "cutoff"
    assert decision.denied and decision.verification["passed"]


def test_latency_is_the_decisions_own_time_and_loading_is_reported_apart(knowledge):
    pipeline = Pipeline(Settings(use_llm=False), knowledge=knowledge)
    first, second = pipeline.run(example("hmda_denial")), pipeline.run(example("hmda_denial"))
    assert first.load_ms is not None and second.load_ms is not None and second.load_ms < 50
    assert 0 < second.latency_ms


def test_a_cold_explain_states_its_own_time_and_the_loading_apart(tmp_path):
    """A fresh process pays for opening the index and loading the embedding model: reported as load_ms."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "lendsafe.cli", "explain", str(EXAMPLES / "hmda_denial.json"),
                          "--writer", "template"], capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "LENDSAFE_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"})
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["load_ms"] > out["latency_ms"] > 0


def test_favourable_values_are_kept_as_dropped_candidates_with_why(knowledge):
    decision = Pipeline(Settings(use_llm=False), reference="cutoff", knowledge=knowledge).run(example("hmda_denial"))
    assert all(d["why"] for d in decision.dropped)
    assert not {d["feature"] for d in decision.dropped} & {r.feature for r in decision.reasons}
    assert decision.score_dict()["dropped_candidates"] == [dict(d) for d in decision.dropped]
