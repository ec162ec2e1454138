"""The writers the evaluation compares: the uncached language-model writer, with and without drafts."""
from lendsafe.evaluation.config import WRITERS
from lendsafe.evaluation.writers import Uncached, chunks
from lendsafe.explain.writer import Writer


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


def test_the_uncached_writer_meets_the_writer_protocol_and_every_writer_is_described():
    assert isinstance(Uncached(object(), drafts=True), Writer)
    assert all(spec.label and spec.name == name for name, spec in WRITERS.items())


def test_chunks_group_by_dataset_and_reference_in_id_order():
    examples = [{"id": i, "dataset": d, "reference": "population"} for i, d in
                [("c", "hmda"), ("a", "hmda"), ("b", "credit"), ("d", "hmda")]]
    assert [[e["id"] for e in chunk] for chunk in chunks(examples, 2)] == [["b"], ["a", "c"], ["d"]]
