"""`lendsafe index`, `lendsafe retrieve` and `lendsafe evaluate-retrieval`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    index = subparsers.add_parser("index", help="build or open the regulation index; print passage count and location")
    index.add_argument("--source", type=Path, help="corpus folder/file: project JSONL, RegML XML or US Code JSON "
                                                   "chunks (default: the project's data/regulations)")
    index.add_argument("--rebuild", action="store_true", help="rebuild even if the corpus hash is unchanged")
    index.set_defaults(func=run_index)

    retrieve = subparsers.add_parser("retrieve", help="print the passages that answer a question (JSON)")
    retrieve.add_argument("question", help="the question, in plain words")
    retrieve.add_argument("-k", type=int, default=4, help="number of passages (default 4)")
    retrieve.add_argument("--source", type=Path, help="search the index built from this source instead")
    retrieve.add_argument("--vector-only", action="store_true", help="rank by embeddings alone (no keyword blend)")
    retrieve.set_defaults(func=run_retrieve)

    evaluate = subparsers.add_parser("evaluate-retrieval",
                                     help="recall@4 and MRR on the evaluation set beside a BM25 baseline (JSON)")
    evaluate.add_argument("--queries", type=Path, help="evaluation JSONL (default data/eval/retrieval_queries.jsonl)")
    evaluate.add_argument("--out", type=Path, help="also write the JSON report to this file")
    evaluate.add_argument("--show-misses", action="store_true", help="include the questions each system missed")
    evaluate.set_defaults(func=run_evaluate)


def _knowledge_base(source: Path | None = None, hybrid: bool = True):
    from lendsafe.knowledge.retrieval import KnowledgeBase

    return KnowledgeBase(source=source, hybrid=hybrid)


def run_index(args: argparse.Namespace) -> int:
    info = _knowledge_base(args.source).ensure_index(rebuild=args.rebuild)
    action = "built" if info["built"] else "up to date"
    print(f"{info['count']} passages indexed ({action}) at {info['location']}")
    print(f"corpus sha256 {info['corpus_sha256']}")
    return 0


def run_retrieve(args: argparse.Namespace) -> int:
    hits = _knowledge_base(args.source, hybrid=not args.vector_only).search(args.question, k=args.k)
    print(json.dumps([{"citation": h.citation, "title": h.title, "text": h.text, "score": h.score} for h in hits],
                     indent=2, ensure_ascii=False))
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from lendsafe.knowledge.retrieval import evaluate_retrieval, load_eval_queries

    report = evaluate_retrieval(_knowledge_base(), load_eval_queries(args.queries))
    if not args.show_misses:
        for name in ("knowledge_base", "vector_only", "bm25"):
            report[name]["misses"] = len(report[name]["misses"])
    text = json.dumps(report, indent=2, ensure_ascii=False)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0
