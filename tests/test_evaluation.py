"""Evaluation harness: held-out data only, metrics, incremental results with resume, refusal to mix
artifacts, plots, gate logic and the `lendsafe evaluate` command (stand-in generators, small limits)."""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from lendsafe.cli import main
from lendsafe.config import PACKAGE_DIR, Settings
from lendsafe.errors import ConfigurationError, LendSafeError
from lendsafe.evaluation.run import (
    SCHEMA_VERSION, EvaluationConfig, EvaluationMismatchError, check_gate, gate_summary, load_records, load_results,
    held_out_sample, records_path, run_evaluation, write_gate_baseline,
)
from lendsafe.evaluation.explain import (
    GATE_QUOTAS, Uncached, choose, faithfulness, held_out_examples, load_split, overlap_report, shared_with_training,
    text_facts, training_keys,
)
from lendsafe.evaluation.model import agreement, load_held_out, nudge, split_overlap
from lendsafe.evaluation.text import similarity, unrelated_pairs
from lendsafe.explain.writer import GenerationResult
from lendsafe.evaluation.store import CODE_FILES, code_sha256

SETTINGS = Settings()
SFT_DIR = SETTINGS.data_dir / "sft"
BAD_TEXT = "Good news: your application is approved and guaranteed. You may reapply any time."
needs_pdftotext = pytest.mark.skipif(not shutil.which("pdftotext"), reason="needs poppler-utils (make test installs it)")


@pytest.fixture(scope="module")
def held_out():
    return held_out_examples(SFT_DIR, "test")


class StandInGenerator:
    """Writes the composer's reference for known prompts: always ('good'), only on the stricter retry
    ('retry') or never ('bad'); counts the prompts it was given and can stop after a number of calls."""

    name = "lora"

    def __init__(self, examples, modes, adapter_sha256="a" * 64, stop_after_calls=None):
        self.targets = {e["messages"][1]["content"]: (e["target"], modes(e)) for e in examples}
        self.adapter_sha256, self.stop_after_calls = adapter_sha256, stop_after_calls
        self.prompts = 0
        self.calls = 0

    def write(self, decisions, prompts):
        if self.stop_after_calls is not None and self.calls >= self.stop_after_calls:
            raise KeyboardInterrupt("stand-in interruption")
        self.calls += 1
        self.prompts += len(prompts)
        return [GenerationResult(self._text(p[1]["content"]), "p" * 64, 10, 5.0, False) for p in prompts]

    def _text(self, user: str) -> str:
        strict = "\nRules:" in user
        plain = "\n".join(line for line in user.split("\n") if not line.startswith("Rules:"))
        target, mode = self.targets[plain]
        return target if mode == "good" or (mode == "retry" and strict) else BAD_TEXT

    def describe(self):
        return {"base_sha256": "b" * 64, "adapter_sha256": self.adapter_sha256}


def test_uncached_writers_run_the_model_the_issuing_one_with_drafts():
    calls = []

    class Recording:
        def write(self, decisions, prompts, **options):
            calls.append((decisions, prompts, options))
            return []

    Uncached(Recording(), drafts=True).write(["d"], [["p"]])          # the issuing writer: the composer's text
    assert calls == [(["d"], [["p"]], {"use_cache": False, "drafts": True, "max_new_tokens": 360})]
    comparison = Uncached(Recording(), drafts=False)                    # the base without adapter: plain batches
    comparison.write(["e"], [["q"]])
    assert calls[-1][2]["drafts"] is False and comparison.name == "lora"


def mode_by_rank(example) -> str:
    return ("good", "retry", "bad")[int(example["id"].encode().hex(), 16) % 3]


def small_config(tmp_path, **changes):
    values = dict(out=tmp_path / "results.json", limit=6, comparison_limit=4, batch1_sample=1, retrieval_limit=4,
                  chunk_size=4, perturbation_copies=1)
    return EvaluationConfig(**{**values, **changes})


# ---------------------------------------------------------------------------- held-out data

def test_evaluated_explanations_share_no_group_application_or_prompt_with_training(held_out):
    examples, report = held_out
    training = [e for name in ("train", "validation") for e in load_split(SFT_DIR, name)]
    overlap = overlap_report(examples, training)
    assert examples and report["held_out"] == len(examples) < report["candidates"]
    assert overlap["shared_application_groups"] == overlap["shared_applications"] == overlap["shared_prompts"] == 0
    left_out = [e for e in load_split(SFT_DIR, "test") if e["id"] not in {x["id"] for x in examples}]
    keys = training_keys(training)
    assert left_out and all(shared_with_training(e, keys) for e in left_out)


def test_overlap_report_catches_an_example_seen_in_training(held_out):
    examples, _ = held_out
    leaked = examples[0]
    overlap = overlap_report(examples[:5], [leaked])
    assert overlap["shared_application_groups"] >= 1 and overlap["shared_prompts"] >= 1
    copy = {**leaked, "application_id": "other", "messages": [{"role": "user", "content": "x"}]}
    assert overlap_report([leaked], [copy])["shared_applications"] == 1


def test_gate_sample_is_fixed_and_follows_its_quotas(held_out):
    examples, _ = held_out
    first, second = choose(examples, None, "gate"), choose(list(reversed(examples)), None, "gate")
    assert [e["id"] for e in first] == [e["id"] for e in second]
    for (dataset, decision), quota in GATE_QUOTAS.items():
        assert sum(e["dataset"] == dataset and e["decision"] == decision for e in first) == quota
    assert len(choose(examples, 7, "limit")) == 7


@pytest.mark.parametrize("dataset", ["hmda", "credit"])
def test_risk_evaluation_rows_are_the_recorded_test_rows_and_never_training_rows(dataset):
    held = load_held_out(dataset, SETTINGS)
    assert np.array_equal(held["test"], np.sort(held["model"].test_index_))
    assert split_overlap(held["train"], held["test"], held["dataset"].X)["shared_rows"] == 0
    assert split_overlap(held["train"], held["train"][:3], held["dataset"].X)["shared_rows"] == 3


# ---------------------------------------------------------------------------- metrics

def test_agreement_and_nudge():
    pairs = [(("A", "B"), ("A", "B")), (("A", "B"), ("B", "A")), (("C",), ("D",))]
    result = agreement(pairs)
    assert result["same_principal_reason"] == pytest.approx(1 / 3, abs=1e-4)
    assert result["same_reasons_in_order"] == pytest.approx(1 / 3, abs=1e-4)
    assert result["mean_jaccard"] == pytest.approx(2 / 3, abs=1e-4)
    spec = load_held_out("hmda", SETTINGS)["model"].spec
    application = {"debt_to_income": 2.99, "housing_expense_to_income": 0.3, "loan_to_value": 0.8,
                   "consumer_credit_history": 3, "mortgage_credit_history": 2, "public_bad_credit_record": True,
                   "mortgage_insurance_denied": False, "self_employed": False, "condominium": True}
    for seed in range(20):
        moved = nudge(spec, application, 0.02, np.random.default_rng(seed))
        assert moved["debt_to_income"] <= 3.0 and abs(moved["loan_to_value"] / 0.8 - 1) <= 0.02
        assert {k: moved[k] for k in application if not isinstance(application[k], float)} == \
               {k: v for k, v in application.items() if not isinstance(v, float)}


def test_unrelated_pairs_never_pair_an_item_with_itself_and_stay_in_their_group():
    groups = ["a"] * 5 + ["b"] * 3 + ["c"]
    pairs = unrelated_pairs(groups, seed=1)
    assert len(pairs) == 8 and all(i != j and groups[i] == groups[j] for i, j in pairs)
    assert sorted(i for i, _ in pairs) == sorted(j for _, j in pairs)


def test_similarity_is_one_for_identical_texts_and_lower_for_unrelated_ones(held_out):
    examples, _ = held_out
    texts = [e["target"] for e in examples[:4]]
    same = similarity(texts, texts)
    assert same["rougeL"] == pytest.approx(1.0) and same["bertscore_f1"] == pytest.approx(1.0, abs=1e-3)
    other = similarity(texts, ["The weather in the harbour was calm all week."] * 4)
    assert other["rougeL"] < 0.2 and other["bertscore_f1"] < same["bertscore_f1"] - 0.1


def test_faithfulness_counts_factors_numbers_and_flags():
    from lendsafe.explain.composer import compose
    from lendsafe.decide.scoring import Scorer

    from passages import citations

    decision = Scorer.load("hmda").score(json.loads((SETTINGS.data_dir / "examples" / "hmda_denial.json").read_text()))
    decision = decision.with_updates(citations=citations())
    assert decision.denied and decision.reasons
    good = text_facts(decision, compose(decision))
    first = decision.reasons[0]
    wrong = text_facts(decision, f"We cannot approve your mortgage application. The principal reason is "
                                 f"{first.statement.lower()}, and your race. Your ratio of 9.99 is too high. Reapply soon.")
    assert good["passed"] and good["factors"] == sorted(r.code for r in decision.reasons)
    assert good["numbers"] == good["numbers_correct"]
    assert not wrong["passed"] and {"no_protected_basis", "no_forbidden_phrase", "numbers_match"} <= set(wrong["failures"])
    records = [{"reason_codes": [r.code for r in decision.reasons], "first": f} for f in (good, wrong)]
    summary = faithfulness(records, "first")
    expected = len(decision.reasons)
    assert summary["factor_recall"] == pytest.approx((expected + 1) / (2 * expected), abs=1e-4)
    assert summary["protected_basis_rate"] == summary["forbidden_phrase_rate"] == 0.5
    assert summary["number_accuracy"] < 1 and summary["pass_rate"] == 0.5
    assert summary["failures_by_check"]["no_protected_basis"] == 1


# ---------------------------------------------------------------------------- a whole small run

@pytest.fixture(scope="module")
def small_run(tmp_path_factory, held_out):
    examples, _ = held_out
    folder = tmp_path_factory.mktemp("evaluation")
    generators = {"lora": StandInGenerator(examples, mode_by_rank),
                  "base": StandInGenerator(examples, lambda e: "bad", adapter_sha256=None)}
    config = small_config(folder)
    seen = []
    results = run_evaluation(config, lambda done, total, stage: seen.append((done, total, stage)),
                             generators=generators, bar=False)
    return results, config, seen, generators


@needs_pdftotext
def test_small_run_writes_every_section_with_hashes_and_progress(small_run):
    results, config, seen, _ = small_run
    assert results["schema_version"] == SCHEMA_VERSION and results["complete"]
    assert set(results["sections"]) == {"risk", "reasons", "retrieval", "explanations", "notices"}
    artifacts = results["artifacts"]
    assert set(artifacts["risk_model_sha256"]) == {"hmda", "credit"} and artifacts["corpus_sha256"]
    assert artifacts["writers"]["lora"]["adapter_sha256"] == "a" * 64 and artifacts["catalog_sha256"]
    for name in ("hmda", "credit"):
        risk = results["sections"]["risk"]["datasets"][name]
        assert risk["held_out"]["shared_rows"] == 0 and risk["matches_recorded_metrics"]
        assert 0.5 < risk["model"]["auc"] <= 1 and risk["logistic_baseline"]["calibration"]
    stages = {stage for *_, stage in seen}
    assert {"risk models", "explanations: lora", "explanations: base", "explanations: template"} <= stages
    assert all(done <= total for done, total, _ in seen)
    assert results["sections"]["notices"]["notices"] == config.limit
    assert results["sections"]["notices"]["completeness_pass_rate"] == 1.0


@needs_pdftotext
def test_writer_figures_follow_what_each_writer_wrote(small_run):
    results, config, _, _ = small_run
    section = results["sections"]["explanations"]
    assert section["sample"]["overlap_with_training"]["shared_prompts"] == 0
    records = {r["id"]: r for r in load_records(config.out) if r["kind"] == "decision" and r["writer"] == "lora"}
    modes = {i: mode_by_rank({"id": i}) for i in records}
    lora, base, template = (section["writers"][w] for w in ("lora", "base", "template"))
    assert lora["first_pass_rate"] == pytest.approx(sum(m == "good" for m in modes.values()) / len(modes), abs=1e-4)
    assert lora["fallback_rate"] == pytest.approx(sum(m == "bad" for m in modes.values()) / len(modes), abs=1e-4)
    assert lora["passed_on_retry_rate"] == pytest.approx(sum(m == "retry" for m in modes.values()) / len(modes), abs=1e-4)
    assert base["first_pass_rate"] == 0 and base["fallback_rate"] == 1
    assert base["faithfulness"]["first_attempt"]["forbidden_phrase_rate"] == 1
    assert all(w["final_pass_rate"] == 1 for w in (lora, base, template))
    assert template["text_similarity"]["first_attempt"]["rougeL"] == pytest.approx(1.0)
    assert template["text_similarity"]["unrelated_floor"]["rougeL"] < 1.0
    assert base["text_similarity"]["first_attempt"]["rougeL"] < template["text_similarity"]["first_attempt"]["rougeL"]
    assert section["sample"]["composer_reproduces_reference"] == config.limit
    assert template["batch1_latency_ms"]["n"] == 1 and template["latency_ms"]["n"] == config.limit
    assert base["batch1_latency_ms"]["n"] == 0            # the comparison writer is timed in batches only


@needs_pdftotext
def test_the_comparison_writer_writes_the_first_decisions_of_the_same_order(small_run):
    results, config, _, _ = small_run
    section = results["sections"]["explanations"]
    order = [e["id"] for e in held_out_sample(config, Settings())[0]]
    written = {w: [r["id"] for r in load_records(config.out) if r["kind"] == "decision" and r["writer"] == w]
               for w in ("lora", "base")}
    assert sorted(written["lora"]) == sorted(order) and sorted(written["base"]) == sorted(order[:config.comparison_limit])
    assert section["writers"]["base"]["decisions"] == section["writers"]["lora_no_passages"]["decisions"] == 4
    assert section["sample"]["comparison_evaluated"] == 8          # both comparison writers, 4 decisions each
    assert section["writers"]["lora"]["decisions"] == config.limit == 6


@needs_pdftotext
def test_plots_exist_and_load_results_resolves_their_paths(small_run):
    _, config, _, _ = small_run
    loaded = load_results(config.out)
    expected = {"risk_hmda", "risk_credit", "writer_metrics", "faithfulness_failures", "latency"}
    assert expected <= set(loaded["plots"])
    for entry in loaded["plots"].values():
        for key in ("png", "data"):
            assert entry[key].startswith("/") and (config.out.parent / "plots").resolve().as_posix() in entry[key]
            assert open(entry[key], "rb").read(4)
    assert json.loads(config.out.read_text())["plots"]["latency"]["png"] == "plots/latency.png"


@needs_pdftotext
def test_rerun_resumes_without_generating_again(small_run):
    results, config, _, generators = small_run
    before = generators["lora"].prompts
    again = run_evaluation(config, generators=generators, bar=False)
    assert generators["lora"].prompts == before
    assert again["sections"]["explanations"]["writers"] == results["sections"]["explanations"]["writers"]


def test_interrupted_run_keeps_finished_decisions_and_resumes_there(tmp_path, held_out):
    examples, _ = held_out
    config = small_config(tmp_path, writers=("lora",), sections=("explanations",), plots=False, batch1_sample=0,
                          chunk_size=2)
    interrupted = StandInGenerator(examples, lambda e: "good", stop_after_calls=2)
    with pytest.raises(KeyboardInterrupt):
        run_evaluation(config, generators={"lora": interrupted}, bar=False)
    kept = [r for r in load_records(config.out) if r["kind"] == "decision"]
    assert 0 < len(kept) < config.limit
    resumed = StandInGenerator(examples, lambda e: "good")
    results = run_evaluation(config, generators={"lora": resumed}, bar=False)
    assert resumed.prompts == config.limit - len(kept)
    assert results["sections"]["explanations"]["writers"]["lora"]["decisions"] == config.limit
    assert len({r["id"] for r in load_records(config.out) if r["kind"] == "decision"}) == config.limit


def test_results_of_other_artifacts_or_settings_are_never_mixed(tmp_path, held_out):
    examples, _ = held_out
    config = small_config(tmp_path, writers=("lora",), sections=("explanations",), plots=False, batch1_sample=0,
                          limit=2)
    run_evaluation(config, generators={"lora": StandInGenerator(examples, lambda e: "good")}, bar=False)
    retrained = StandInGenerator(examples, lambda e: "good", adapter_sha256="c" * 64)
    with pytest.raises(EvaluationMismatchError, match="adapter_sha256"):
        run_evaluation(config, generators={"lora": retrained}, bar=False)
    with pytest.raises(EvaluationMismatchError, match="limit"):
        run_evaluation(small_config(tmp_path, writers=("lora",), sections=("explanations",), plots=False,
                                    batch1_sample=0, limit=3), generators={"lora": retrained}, bar=False)
    config.out.unlink()
    with pytest.raises(EvaluationMismatchError):       # the records file alone is refused too
        run_evaluation(config, generators={"lora": retrained}, bar=False)
    fresh = replace(config, fresh=True)
    results = run_evaluation(fresh, generators={"lora": retrained}, bar=False)
    assert results["artifacts"]["writers"]["lora"]["adapter_sha256"] == "c" * 64
    rows = [json.loads(line) for line in records_path(config.out).read_text().splitlines()]
    assert rows[0]["header"]["artifacts"]["writers"]["lora"]["adapter_sha256"] == "c" * 64


def test_a_refused_final_text_counts_against_final_faithfulness(tmp_path, monkeypatch):
    import lendsafe.explain.composer

    monkeypatch.setattr(lendsafe.explain.composer, "compose", lambda decision: BAD_TEXT)
    config = small_config(tmp_path, writers=("template",), sections=("explanations",), plots=False,
                          batch1_sample=0, limit=3)
    results = run_evaluation(config, bar=False)
    writer = results["sections"]["explanations"]["writers"]["template"]
    assert writer["final_pass_rate"] == 0 and writer["not_issued"] == 3
    results["sections"]["explanations"]["writers"]["lora"] = writer
    results["artifacts"]["writers"]["lora"] = {}
    summary = gate_summary(results)
    assert any("final faithfulness" in p for p in check_gate(summary, {**summary, "first_pass_rate": 0.0}))


# ---------------------------------------------------------------------------- gate rules, config, CLI

def summary(first: float, final: float = 1.0, ids: str = "x") -> dict:
    return {"first_pass_rate": first, "final_pass_rate": final, "ids_sha256": ids}


@pytest.mark.parametrize("current, baseline, failing", [
    (summary(0.90), summary(0.90), []),
    (summary(0.87), summary(0.90), []),
    (summary(0.86), summary(0.90), ["first-pass"]),
    (summary(0.95, final=29 / 30), summary(0.90), ["final faithfulness"]),
    (summary(0.90, ids="y"), summary(0.90), ["differ from the baseline"]),
])
def test_gate_rules(current, baseline, failing):
    problems = check_gate(current, baseline)
    assert len(problems) == len(failing) and all(word in p for word, p in zip(failing, problems))


def test_a_baseline_needs_full_final_faithfulness(tmp_path):
    with pytest.raises(LendSafeError, match="100%"):
        write_gate_baseline(summary(0.9, final=0.95), tmp_path / "baseline.json")
    assert json.loads(write_gate_baseline(summary(0.9), tmp_path / "b.json").read_text())["first_pass_rate"] == 0.9


@pytest.mark.parametrize("changes, field_name", [
    ({"writers": ("lora", "gpt")}, "writers"), ({"sections": ()}, "sections"), ({"limit": 0}, "limit"),
    ({"split": "train"}, "split"), ({"perturbation_scale": 0.9}, "perturbation_scale"),
])
def test_config_names_the_bad_field(changes, field_name):
    with pytest.raises(ConfigurationError, match=field_name):
        EvaluationConfig(**changes)


def test_every_config_field_is_documented():
    assert all(EvaluationConfig.help_table().values())


def test_cli_runs_a_small_evaluation_and_rejects_bad_flags(tmp_path, capsys):
    out = tmp_path / "cli.json"
    assert main(["evaluate", "--writers", "template", "--sections", "explanations", "--limit", "2", "--out",
                 str(out), "--no-plots", "--quiet", "--batch1-sample", "0"]) == 0
    printed = capsys.readouterr().out
    assert "template" in printed and str(out) in printed and load_results(out)["complete"]
    with pytest.raises(SystemExit):
        main(["evaluate", "--limit", "many"])
    assert "'all'" in capsys.readouterr().err
    assert main(["evaluate", "--writers", "gpt", "--out", str(out)]) == 2
    assert "writers" in capsys.readouterr().err
    assert main(["evaluate", "--write-baseline", "--out", str(out)]) == 2
    assert "--gate" in capsys.readouterr().err


def test_code_hashes_cover_every_module_of_a_package(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "a.py").write_text("A = 1\n")
    (package / "sub" / "b.py").write_text("B = 2\n")
    first = code_sha256(package)
    (package / "sub" / "b.py").write_text("B = 3\n")
    second = code_sha256(package)
    (package / "c.py").write_text("")
    assert len({first, second, code_sha256(package)}) == 3
    assert code_sha256(package / "a.py") == hashlib.sha256(b"A = 1\n").hexdigest()
    assert "explain/verify" in CODE_FILES and "decide/catalog.py" in CODE_FILES
    assert all((PACKAGE_DIR / name).exists() for name in CODE_FILES)
