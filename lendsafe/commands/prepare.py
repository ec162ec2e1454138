"""`lendsafe prepare`: make every artifact the app and tests need (idempotent, offline)."""
from __future__ import annotations

import argparse
import json
import time

from lendsafe.commands.users import first_admin


def register(subparsers: argparse._SubParsersAction) -> None:
    prepare = subparsers.add_parser("prepare", help="train missing risk models, build the index, convert the base model")
    prepare.add_argument("--skip-llm", action="store_true", help="do not convert the bundled base model")
    prepare.set_defaults(func=run_prepare)


def _risk_models() -> dict:
    from lendsafe.decide.specs import builtin_dataset_names
    from lendsafe.decide.risk import model_dir, train_risk_model

    status = {}
    for name in builtin_dataset_names():
        present = (model_dir(name) / "model.json").exists()
        status[name] = "present" if present else f"trained ({train_risk_model(name).sha256[:12]})"
    return status


def _index() -> dict:
    from lendsafe.knowledge.retrieval import KnowledgeBase

    return KnowledgeBase().ensure_index()


def _base_model() -> dict:
    from lendsafe.lm.basemodel import base_model_sha256, ensure_base_model

    path = ensure_base_model()
    return {"path": str(path), "sha256": base_model_sha256(path)}


STEPS = (("risk_models", _risk_models), ("index", _index), ("base_model", _base_model),
         ("users", first_admin))          # the dashboard's first user, its password printed once


def run_prepare(args: argparse.Namespace) -> int:
    report = {}
    for name, step in STEPS:
        if name == "base_model" and args.skip_llm:
            continue
        started = time.perf_counter()
        result = step()
        report[name] = {"result": result, "seconds": round(time.perf_counter() - started, 1)}
        print(f"prepare: {name} ready in {report[name]['seconds']} s", flush=True)
    print(json.dumps(report, indent=2, default=str))
    return 0
