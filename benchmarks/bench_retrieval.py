"""Retrieval benchmark: index build time, query latency and quality, each beside a baseline from the same run.

* build: embedding model load and default-index build (fresh home), vs. building the BM25 baseline;
* queries: p50/p95 of the knowledge base's search (hybrid and vector-only) after warm-up, vs. BM25;
* quality: recall@4 and MRR on ``data/eval/retrieval_queries.jsonl`` beside BM25;
* optional ``--official``: build time of an index over the official text in ``../shared/regs``.

Writes ``benchmarks/results/retrieval.json``. Run: ``python benchmarks/bench_retrieval.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lendsafe.config import PROJECT_ROOT, Settings  # noqa: E402
from lendsafe.knowledge.retrieval import Bm25Baseline, KnowledgeBase, evaluate_retrieval, load_eval_queries  # noqa: E402

RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "retrieval.json"
OFFICIAL = (PROJECT_ROOT / ".." / "shared" / "regs").resolve()


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def latencies_ms(search, questions: list[str], repeats: int) -> dict[str, float]:
    samples = []
    for _ in range(repeats):
        for question in questions:
            _, seconds = timed(search, question, 4)
            samples.append(seconds * 1000)
    samples.sort()
    return {"p50": round(statistics.median(samples), 3), "p95": round(samples[int(0.95 * (len(samples) - 1))], 3),
            "n": len(samples)}


def bench_build(home: Path) -> tuple[KnowledgeBase, dict]:
    from lendsafe.knowledge.embeddings import load_model

    _, model_seconds = timed(load_model)
    kb = KnowledgeBase(Settings(home=home))
    info, build_seconds = timed(kb.ensure_index)
    _, bm25_seconds = timed(Bm25Baseline, kb.passages)
    return kb, {"passages": info["count"], "model_load_s": round(model_seconds, 3),
                "index_build_s": round(build_seconds, 3), "bm25_build_s": round(bm25_seconds, 4),
                "build_vs_bm25": round(build_seconds / bm25_seconds, 1), "reopen_s": KnowledgeBase(
                    Settings(home=home)).ensure_index()["seconds"]}


def bench_queries(kb: KnowledgeBase, repeats: int) -> dict:
    questions = [row["question"] for row in load_eval_queries()]
    vector_only = KnowledgeBase(kb.settings, hybrid=False)
    vector_only.ensure_index()
    bm25 = Bm25Baseline(kb.passages)
    for search in (kb.search, vector_only.search):
        for question in questions[:5]:
            search(question, 4)                                                    # warm-up
    result = {"hybrid_ms": latencies_ms(kb.search, questions, repeats),
              "vector_only_ms": latencies_ms(vector_only.search, questions, repeats),
              "bm25_ms": latencies_ms(bm25.search, questions, repeats)}
    result["hybrid_p50_vs_bm25"] = round(result["hybrid_ms"]["p50"] / result["bm25_ms"]["p50"], 1)
    return result


def bench_official(home: Path) -> dict:
    kb = KnowledgeBase(Settings(home=home), source=OFFICIAL)
    info, seconds = timed(kb.ensure_index)
    hits = kb.search("free copy of the consumer report within 60 days after adverse action", 4)
    return {"source": str(OFFICIAL), "passages": info["count"], "index_build_s": round(seconds, 3),
            "per_passage_ms": round(1000 * seconds / info["count"], 2), "example_top": hits[0].citation}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="passes over the evaluation questions")
    parser.add_argument("--official", action="store_true", help="also time an index of ../shared/regs (minutes)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        kb, build = bench_build(Path(tmp) / "home")
        report = {"machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                              "python": platform.python_version(), "load_avg": os.getloadavg()},
                  "build": build, "queries": bench_queries(kb, args.repeats)}
        quality = evaluate_retrieval(kb)
        report["quality"] = {name: {k: v for k, v in quality[name].items() if k != "misses"}
                             for name in ("knowledge_base", "vector_only", "bm25")}
        report["quality"].update({k: quality[k] for k in ("queries", "ranking", "keyword_weight",
                                                          "recall_gain_over_bm25", "mrr_gain_over_bm25")})
        if args.official and OFFICIAL.exists():
            report["official"] = bench_official(Path(tmp) / "official-home")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
