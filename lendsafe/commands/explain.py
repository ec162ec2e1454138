"""`lendsafe explain` and `lendsafe make-sft-data`."""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    explain = subparsers.add_parser("explain", help="score, explain and verify an application JSON")
    explain.add_argument("file", help="application JSON file, or - for standard input")
    explain.add_argument("--dataset", default="hmda", help="dataset whose model scores it (default hmda)")
    explain.add_argument("--reference", default="population", choices=("population", "cutoff"),
                         help="reason reference (Reg B comment 9(b)(2)-5)")
    explain.add_argument("--writer", default="auto", choices=("auto", "lora", "template"),
                         help="auto: LoRA writer with verified fallback; template: deterministic composer only")
    explain.add_argument("--actor", help="who asks, kept in the audit store (default cli:<user>)")
    explain.set_defaults(func=run_explain)

    sft = subparsers.add_parser("make-sft-data", help="build the fine-tuning examples under data/sft")
    sft.add_argument("--out", type=Path, help="output folder (default data/sft)")
    sft.add_argument("--perturbations", type=int, default=2, help="perturbed copies per training application")
    sft.set_defaults(func=run_make_sft_data)


def explain_dict(decision, audit_id: int | None = None) -> dict:
    """The `lendsafe explain` JSON: the score JSON plus the explanation and its evidence."""
    return {**decision.score_dict(), "explanation": decision.explanation, "writer": decision.writer,
            "writer_reason": decision.writer_reason, "verification": decision.verification,
            "citations": [asdict(c) for c in decision.citations], "latency_ms": decision.latency_ms,
            "load_ms": decision.load_ms, "audit_id": audit_id}


def run_explain(args: argparse.Namespace) -> int:
    from lendsafe.decide.application import read_application_json
    from lendsafe.config import Settings
    from lendsafe.issue.issuer import Issuer, default_actor, open_audit_store
    from lendsafe.commands.serve import pipeline

    application = read_application_json(args.file, args.dataset)
    settings = Settings(dataset=args.dataset)
    issuer = Issuer(pipeline(settings, reference=args.reference, writer=args.writer),
                    audit=open_audit_store(settings), actor=args.actor or default_actor("cli"))
    explained = issuer.record_decision(application)
    print(json.dumps(explain_dict(explained.decision, explained.record_id), indent=2, ensure_ascii=False))
    return 0


def run_make_sft_data(args: argparse.Namespace) -> int:
    from lendsafe.train.sft import SftConfig, make_sft_data

    config = SftConfig(perturbations=args.perturbations, **({"out_dir": args.out} if args.out else {}))
    print(json.dumps(make_sft_data(config), indent=2))
    return 0
