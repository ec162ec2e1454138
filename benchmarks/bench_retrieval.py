"""Retrieval benchmark: index build time, query latency and quality, each beside a baseline from the same run,
with the benchmark method (``benchmarks/method.py``).

* build: the default index built in a fresh home per call (embedding model already loaded) beside building
  the BM25 baseline over the same passages, taking turns; the embedding model's load and reopening a built
  index are timed once each (single measurements, not rounds);
* queries: the knowledge base's search (hybrid and vector-only) beside BM25, one evaluation question per
  call, taking turns, after warm-up; the query vectors of questions seen before come from the on-disk
  query-vector cache (as in the app, whose queries repeat), so hybrid search is also timed with that cache
  emptied before each call (``hybrid_new_query``: the question embedded every time);
* quality: recall@4 and MRR on ``data/eval/retrieval_queries.jsonl`` beside BM25 (deterministic, once);
* optional ``--official``: build time of an index over the official text in ``../shared/regs`` (once).

Run: ``python benchmarks/bench_retrieval.py [--quick] [--official] [--force]``.
"""
from __future__ import annotations

import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import method  # noqa: E402
from lendsafe.config import Settings  # noqa: E402
from lendsafe.knowledge.retrieval import Bm25Baseline, KnowledgeBase, evaluate_retrieval, load_eval_queries  # noqa: E402

OFFICIAL = (method.ROOT / ".." / "shared" / "regs").resolve()
ROUNDS = {"default": {"build": (3, 5), "queries": (3, 6), "questions": None},
          "quick": {"build": (2, 2), "queries": (2, 2), "questions": 10}}


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def measure_build(folder: Path, rounds: tuple) -> tuple[KnowledgeBase, dict, dict]:
    """The index built in a fresh home per call beside the BM25 build; model load and reopen timed once."""
    from lendsafe.knowledge.embeddings import load_model

    _, model_seconds = timed(load_model)
    kb = KnowledgeBase(Settings(home=folder / "home"))
    info = kb.ensure_index()
    homes = (folder / f"build-{n}" for n in itertools.count())
    contenders = {"index_build": lambda: KnowledgeBase(Settings(home=next(homes))).ensure_index(),
                  "bm25_build": lambda: Bm25Baseline(kb.passages)}
    timings = method.interleave(contenders, calls=1, min_rounds=rounds[0], max_rounds=rounds[1])
    figures = method.summaries(timings, baseline="bm25_build")
    figures["once"] = {"passages": info["count"], "model_load_s": round(model_seconds, 3),
                       "reopen_s": KnowledgeBase(Settings(home=folder / "home")).ensure_index()["seconds"]}
    return kb, figures, timings


def new_query_search(home: Path):
    """Hybrid search over an index built in ``home``, its query-vector cache emptied before each call."""
    from lendsafe.knowledge.embeddings import QUERY_CACHE_FILE

    kb = KnowledgeBase(Settings(home=home))
    kb.ensure_index()
    cache = home / "cache" / QUERY_CACHE_FILE

    def search(question: str, k: int):
        cache.unlink(missing_ok=True)
        return kb.search(question, k)
    return search


def measure_queries(kb: KnowledgeBase, other_home: Path, questions: list[str], rounds: tuple) -> tuple[dict, dict]:
    vector_only = KnowledgeBase(kb.settings, hybrid=False)
    vector_only.ensure_index()
    bm25, new_query = Bm25Baseline(kb.passages), new_query_search(other_home)
    for search in (kb.search, vector_only.search, new_query):
        for question in questions[:5]:
            search(question, 4)                                                    # warm-up
    contenders = {name: method.cycling(lambda q, s=search: s(q, 4), questions)
                  for name, search in (("hybrid", kb.search), ("hybrid_new_query", new_query),
                                       ("vector_only", vector_only.search), ("bm25", bm25.search))}
    timings = method.interleave(contenders, calls=len(questions), min_rounds=rounds[0], max_rounds=rounds[1],
                                warmup=0)
    return method.summaries(timings, baseline="bm25"), timings


def quality(kb: KnowledgeBase) -> dict:
    found = evaluate_retrieval(kb)
    figures = {name: {k: v for k, v in found[name].items() if k != "misses"}
               for name in ("knowledge_base", "vector_only", "bm25")}
    figures.update({k: found[k] for k in ("queries", "ranking", "keyword_weight", "recall_gain_over_bm25",
                                          "mrr_gain_over_bm25")})
    return figures


def official(home: Path) -> dict:
    kb = KnowledgeBase(Settings(home=home), source=OFFICIAL)
    info, seconds = timed(kb.ensure_index)
    hits = kb.search("free copy of the consumer report within 60 days after adverse action", 4)
    return {"source": str(OFFICIAL), "passages": info["count"], "index_build_s": round(seconds, 3),
            "per_passage_ms": round(1000 * seconds / info["count"], 2), "example_top": hits[0].citation,
            "single_measurement": True}


def readme_rows(figures: dict) -> list[dict[str, str]]:
    build, queries, found = figures["build"], figures["queries"], figures["quality"]
    ours, bm25 = found["knowledge_base"], found["bm25"]
    return [{"what": f"retrieval index build, {build['once']['passages']} passages, fresh home (p50)",
             "measured": f"{build['index_build']['p50_ms'] / 1000:.2f} s (embedding model load "
                         f"{build['once']['model_load_s']:.1f} s, once)",
             "baseline": f"BM25 build {build['bm25_build']['p50_ms']:.1f} ms"},
            {"what": "retrieval query, hybrid, top 4, question embedded each call (p50 / p95)",
             "measured": f"{queries['hybrid_new_query']['p50_ms']:.1f} / {queries['hybrid_new_query']['p95_ms']:.1f} ms"
                         f"; query vector cached {queries['hybrid']['p50_ms']:.1f} / {queries['hybrid']['p95_ms']:.1f} ms",
             "baseline": f"vector only {queries['vector_only']['p50_ms']:.1f} / {queries['vector_only']['p95_ms']:.1f} "
                         f"ms; BM25 {queries['bm25']['p50_ms']:.2f} / {queries['bm25']['p95_ms']:.2f} ms"},
            {"what": f"retrieval recall@4 / MRR ({found['queries']} questions)",
             "measured": f"{ours['recall@4']:.3f} / {ours['mrr']:.3f}",
             "baseline": f"BM25 {bm25['recall@4']:.3f} / {bm25['mrr']:.3f}"}]


def main(argv: list[str] | None = None) -> int:
    parser = method.parser(__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds, 10 questions (a check that it runs)")
    parser.add_argument("--official", action="store_true", help="also time an index of ../shared/regs (minutes)")
    args = parser.parse_args(argv)
    rounds = ROUNDS["quick" if args.quick else "default"]
    run = method.Run("retrieval", "torch", "sentence-transformers", "chromadb")
    import torch

    questions = [row["question"] for row in load_eval_queries()][:rounds["questions"]]
    with tempfile.TemporaryDirectory() as tmp:
        kb, build, build_timings = measure_build(Path(tmp), rounds["build"])
        queries, query_timings = measure_queries(kb, Path(tmp) / "build-0", questions, rounds["queries"])
        figures = {"build": build, "queries": queries, "quality": quality(kb)}
        if args.official and OFFICIAL.exists():
            figures["official"] = official(Path(tmp) / "official-home")
    spreads = {f"{section} {name}": t.spread() for section, timings in (("build", build_timings),
                                                                        ("queries", query_timings))
               for name, t in timings.items()}
    print({name: figures["queries"][name]["p50_ms"] for name in ("hybrid", "hybrid_new_query", "vector_only", "bm25")},
          {name: figures["quality"][name]["recall@4"] for name in ("knowledge_base", "bm25")})
    run.finish(figures, readme_rows(figures), spreads, force=args.force, rounds=rounds,
               threads=f"torch {torch.get_num_threads()} threads")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
