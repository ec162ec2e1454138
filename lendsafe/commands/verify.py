"""`lendsafe verify`: check a written paragraph against the decision the model makes for an application."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lendsafe.errors import LendSafeError

MAX_TEXT_CHARS = 20_000


def register(subparsers: argparse._SubParsersAction) -> None:
    verify = subparsers.add_parser(
        "verify", help="verify explanation text(s) against an application's decision (exit 0 all pass, 1 any fails)")
    verify.add_argument("file", help="application JSON file, or - for standard input")
    texts = verify.add_mutually_exclusive_group(required=True)
    texts.add_argument("--text", type=Path, help="a plain-text file holding one explanation")
    texts.add_argument("--texts", type=Path, help='a JSON Lines file: one {"id": ..., "text": ...} per line')
    verify.add_argument("--dataset", default="hmda", help="dataset whose model scores it (default hmda)")
    verify.add_argument("--reference", default="population", choices=("population", "cutoff"),
                        help="reason reference (Reg B comment 9(b)(2)-5)")
    verify.set_defaults(func=run_verify)


def read_text(path: Path) -> str:
    """One explanation from a UTF-8 text file, with a clear error for anything else."""
    if not path.is_file():
        raise LendSafeError(f"--text: expected a readable text file; got {str(path)!r}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise LendSafeError(f"--text: {path} is not UTF-8 text") from None
    return _checked(text, "--text")


def read_texts(path: Path) -> list[tuple[str, str]]:
    """(id, text) pairs from a JSON Lines file; each line must be an object with a string ``text``."""
    if not path.is_file():
        raise LendSafeError(f"--texts: expected a readable JSON Lines file; got {str(path)!r}")
    try:
        lines = path.read_bytes().decode("utf-8").split("\n")      # JSON Lines: only \n ends a line
    except UnicodeDecodeError:
        raise LendSafeError(f"--texts: {path} is not UTF-8 text") from None
    pairs = [_line(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    if not pairs:
        raise LendSafeError(f"--texts: {path} holds no texts")
    return pairs


def _line(number: int, line: str) -> tuple[str, str]:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise LendSafeError(f"--texts line {number}: expected a JSON object; {exc.msg}") from None
    if not isinstance(item, dict) or not isinstance(item.get("text"), str):
        raise LendSafeError(f'--texts line {number}: expected {{"id": ..., "text": "..."}} with text a string')
    return str(item.get("id", number)), _checked(item["text"], f"--texts line {number} text")


def _checked(text: str, where: str) -> str:
    if len(text) > MAX_TEXT_CHARS:
        raise LendSafeError(f"{where}: expected at most {MAX_TEXT_CHARS:,} characters; got {len(text):,}")
    return text.strip()


def verify_texts(application: dict[str, Any], texts: list[tuple[str, str]], dataset: str,
                 reference: str) -> list[dict[str, Any]]:
    """The decision made once, each text verified against it (retrieved citations attached, as the pipeline does)."""
    from lendsafe.config import Settings
    from lendsafe.explain.pipeline import Pipeline
    from lendsafe.explain.verify import verify

    pipeline = Pipeline(Settings(dataset=dataset, use_llm=False), reference=reference, writer="template")
    decision = pipeline.scorer.score(application, reference)
    decision = decision.with_updates(citations=pipeline.citations_for(decision))
    return [{"id": text_id, **verify(decision, text).to_dict()} for text_id, text in texts]


def run_verify(args: argparse.Namespace) -> int:
    from lendsafe.decide.application import read_application_json

    application = read_application_json(args.file, args.dataset)
    texts = [(args.text.name, read_text(args.text))] if args.text else read_texts(args.texts)
    reports = verify_texts(application, texts, args.dataset, args.reference)
    if args.text:
        print(json.dumps(reports[0], indent=2, ensure_ascii=False))
    else:
        print("\n".join(json.dumps(r, ensure_ascii=False) for r in reports))
    return 0 if all(r["passed"] for r in reports) else 1
