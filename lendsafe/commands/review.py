"""`lendsafe review list|show|approve|edit|reject|reassign`: the review queue from the shell.

Every action takes ``--actor`` (default ``cli:<user>``) and is a record of the audit chain. A refused
action (the item is closed, another analyst acted first, the paragraph fails a check, the editor tries
to approve) prints the reason and exits 2; an edit that is recorded but fails verification prints the
failing checks and exits 1 (it cannot be issued until a passing edit).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from lendsafe.commands.audit import TEXT_FILTERS, bounded_int, matching
from lendsafe.redaction import printable

STATUSES = ("pending", "approved", "rejected", "any")
NOTICE_SETTINGS_ENV = "LENDSAFE_NOTICE_SETTINGS"
ITEM_ID = bounded_int(1, 2**62)


def register(subparsers: argparse._SubParsersAction) -> None:
    review = subparsers.add_parser("review", help="the review queue: list, show, approve, edit, reject, reassign")
    review.add_argument("--db", dest="database_url", help="audit store URL (default: LENDSAFE_DATABASE_URL "
                                                          "or SQLite under LENDSAFE_HOME)")
    review.add_argument("--notice-settings", type=Path, help="lender TOML/JSON the approved notices are issued "
                                                             f"with (default: {NOTICE_SETTINGS_ENV}, else SPECIMEN)")
    commands = review.add_subparsers(dest="review_command", metavar="ACTION", required=True)
    for name, (helptext, func, add_arguments) in ACTIONS.items():
        parser = commands.add_parser(name, help=helptext)
        add_arguments(parser)
        parser.set_defaults(func=func)


def _reviewer(args: argparse.Namespace):
    from lendsafe.audit.store import AuditStore
    from lendsafe.notice import NoticeSettings
    from lendsafe.review import Reviewer, ReviewPolicy

    path = args.notice_settings or os.environ.get(NOTICE_SETTINGS_ENV)
    settings = NoticeSettings.from_file(path) if path else NoticeSettings()
    return Reviewer(AuditStore(args.database_url), notice_settings=settings, policy=ReviewPolicy.from_env())


def _actor(args: argparse.Namespace) -> str:
    from lendsafe.issue.issuer import default_actor

    return args.actor or default_actor("cli")


# ----------------------------------------------------------------------------- list and show

def _list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--status", choices=STATUSES, default="pending", help="items of this status (default pending)")
    for name in ("dataset", "writer", "reason"):
        pattern, what = TEXT_FILTERS[name]
        parser.add_argument(f"--{name}", type=matching(pattern, what), help=f"only items whose {name} matches "
                            + ("(any principal reason)" if name == "reason" else "(the drafting writer)"
                               if name == "writer" else ""))
    parser.add_argument("--held-for", type=matching(r"[a-z_]{1,32}", "a hold reason such as near_cutoff"),
                        help="only items held for this reason (lora_retry, composer_fallback, near_cutoff, batch, ...)")
    parser.add_argument("--assignee", type=matching(*TEXT_FILTERS["actor"]), help="only items assigned to this actor")
    parser.add_argument("--older-than", type=bounded_int(0, 10**6), metavar="HOURS", help="held at least this long")
    parser.add_argument("--newer-than", type=bounded_int(0, 10**6), metavar="HOURS", help="held at most this long")
    parser.add_argument("--limit", type=bounded_int(1, 1_000_000), default=100, help="at most this many (default 100)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")


def run_list(args: argparse.Namespace) -> int:
    from lendsafe.review import QueueFilter

    wanted = QueueFilter(None if args.status == "any" else args.status, args.dataset, args.writer, args.reason,
                         args.held_for, args.assignee, args.older_than, args.newer_than)
    reviewer = _reviewer(args)
    with reviewer.store:
        items = reviewer.queue(wanted)[: args.limit]
    for item in items:
        print(json.dumps(item_summary(item)) if args.json else item_line(item))
    if not args.json:
        print(f"{len(items)} item(s) {args.status if args.status != 'any' else ''}".rstrip(), file=sys.stderr)
    return 0


def item_summary(item: Any) -> dict[str, Any]:
    """The queue row of an item as plain JSON."""
    application = item.application
    return {"item": item.id, "status": item.status, "dataset": item.dataset, "writer": item.writer,
            "application_id": application.get("application_id"), "reasons": list(item.reason_codes),
            "held_for": list(item.held_for), "held_by": item.held_by, "held_at": item.held_at,
            "revision": item.current.number, "passes": item.current.passed, "assignee": item.assignee,
            "outcome_record": item.outcome.record_id if item.outcome else None,
            "outcome_by": item.outcome.actor if item.outcome else None}


def item_line(item: Any) -> str:
    row = item_summary(item)
    return printable(f"{row['item']:>6}  {row['held_at'][:19]}  {row['status']:<8} {row['dataset']:<8} "
                     f"{(row['reasons'] or ['-'])[0]:<26} {row['writer'] or '-':<9} r{row['revision']} "
                     f"{'passes' if row['passes'] else 'FAILS':<6} {','.join(row['held_for'])}"
                     f"{'  -> ' + row['assignee'] if row['assignee'] else ''}")


def _show_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("item", type=ITEM_ID, help="item id (the held record's audit id)")
    parser.add_argument("--json", action="store_true", help="the item as JSON")
    parser.add_argument("--pdf", type=Path, help="also write the draft notice of the current paragraph here")


def run_show(args: argparse.Namespace) -> int:
    reviewer = _reviewer(args)
    with reviewer.store:
        item = reviewer.item(args.item)
    if args.json:
        print(json.dumps(item_detail(item), indent=2, ensure_ascii=False))
    else:
        print(item_text(item))
    if args.pdf:
        rendered = reviewer.preview(item)
        args.pdf.write_bytes(rendered.pdf)
        print(f"wrote draft notice {args.pdf} ({rendered.notice.document_id}, not issued)", file=sys.stderr)
    return 0


def item_detail(item: Any) -> dict[str, Any]:
    decision = item.decision
    return {**item_summary(item),
            "reasons": [{"code": r.code, "statement": r.statement, "value": r.display_value,
                         "contribution": r.contribution} for r in decision.reasons],
            "risk": decision.risk, "threshold": decision.threshold, "reference": decision.reference,
            "revisions": [{"revision": r.number, "actor": r.actor, "at": r.at, "record": r.record_id,
                           "passes": r.passed, "failures": r.failures, "text": r.text, "diff": r.diff}
                          for r in item.revisions],
            "outcome": None if item.outcome is None else vars(item.outcome)}


def item_text(item: Any) -> str:
    detail = item_detail(item)
    lines = [item_line(item), f"risk {detail['risk']:.3f} vs cutoff {detail['threshold']:.3f} "
                              f"({detail['reference']} reference)", "reasons (from the model, not editable):"]
    lines += [f"  {i}. {r['code']}: {r['statement']} (value {r['value']}, contribution {r['contribution']:+.3f})"
              for i, r in enumerate(detail["reasons"], 1)]
    for revision in detail["revisions"]:
        lines.append(f"revision {revision['revision']} by {revision['actor']} at {revision['at']} "
                     f"(record {revision['record']}): {'passes every check' if revision['passes'] else 'FAILS'}")
        lines += [f"  failing {name}: {why}" for name, why in revision["failures"].items()]
    lines += ["current paragraph:", item.current.text]
    if item.outcome:
        lines.append(f"outcome: {item.outcome.status} by {item.outcome.actor} at {item.outcome.at} "
                     f"(record {item.outcome.record_id}){': ' + item.outcome.reason if item.outcome.reason else ''}")
    return printable("\n".join(lines), keep_newlines=True)


# ----------------------------------------------------------------------------- actions

def _action_arguments(parser: argparse.ArgumentParser, *, revision: bool = False) -> None:
    parser.add_argument("item", type=ITEM_ID, help="item id (the held record's audit id)")
    parser.add_argument("--actor", type=matching(*TEXT_FILTERS["actor"]), help="who acts (default cli:<user>)")
    if revision:
        parser.add_argument("--revision", type=bounded_int(0, 10**6),
                            help="the revision you reviewed: refused if the item has changed since")


def _approve_arguments(parser: argparse.ArgumentParser) -> None:
    _action_arguments(parser, revision=True)
    parser.add_argument("--out", type=Path, help="write the issued notice PDF here")


def run_approve(args: argparse.Namespace) -> int:
    reviewer = _reviewer(args)
    with reviewer.store:
        issued = reviewer.approve(args.item, actor=_actor(args), revision=args.revision)
    if args.out and issued.pdf:
        args.out.write_bytes(issued.pdf)
    print(f"item {args.item} approved by {_actor(args)}: notice {issued.notice.document_id} issued, audit record "
          f"{issued.record_id}" + (f", wrote {args.out}" if args.out else ""))
    return 0


def _edit_arguments(parser: argparse.ArgumentParser) -> None:
    _action_arguments(parser, revision=True)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="the new plain-words paragraph")
    source.add_argument("--file", type=Path, help="read the new paragraph from this file (- for standard input)")


def _edited_text(args: argparse.Namespace) -> str:
    from lendsafe.errors import ConfigurationError

    if args.text is not None:
        return args.text
    try:
        return sys.stdin.read() if str(args.file) == "-" else args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"--file {printable(args.file)}: cannot read it ({exc})") from None


def run_edit(args: argparse.Namespace) -> int:
    reviewer = _reviewer(args)
    with reviewer.store:
        revision = reviewer.edit(args.item, _edited_text(args), actor=_actor(args), revision=args.revision)
    print(f"item {args.item}: revision {revision.number} recorded (audit record {revision.record_id})")
    print(revision.diff)
    if revision.passed:
        print("the paragraph passes every check: it can be approved by another reviewer")
        return 0
    print("the paragraph FAILS verification and cannot be issued until a passing edit:", file=sys.stderr)
    for name, why in revision.failures.items():
        print(f"  {name}: {printable(why)}", file=sys.stderr)
    return 1


def _reject_arguments(parser: argparse.ArgumentParser) -> None:
    _action_arguments(parser)
    parser.add_argument("--reason", required=True, help="why nothing is issued (recorded)")


def run_reject(args: argparse.Namespace) -> int:
    reviewer = _reviewer(args)
    with reviewer.store:
        record = reviewer.reject(args.item, args.reason, actor=_actor(args))
    print(f"item {args.item} rejected by {_actor(args)}: nothing issued (audit record {record.id})")
    return 0


def _reassign_arguments(parser: argparse.ArgumentParser) -> None:
    _action_arguments(parser)
    parser.add_argument("--to", dest="assignee", required=True, type=matching(*TEXT_FILTERS["actor"]),
                        help="the analyst the item is assigned to")


def run_reassign(args: argparse.Namespace) -> int:
    reviewer = _reviewer(args)
    with reviewer.store:
        record = reviewer.reassign(args.item, args.assignee, actor=_actor(args))
    print(f"item {args.item} assigned to {args.assignee} by {_actor(args)} (audit record {record.id})")
    return 0


ACTIONS = {
    "list": ("the queue: pending items by default, filtered", run_list, _list_arguments),
    "show": ("one item: reasons, contributions, revisions with their checks, the current paragraph", run_show,
             _show_arguments),
    "approve": ("issue the item's current paragraph as its notice", run_approve, _approve_arguments),
    "edit": ("record a new plain-words paragraph (re-verified; a failing one cannot be issued)", run_edit,
             _edit_arguments),
    "reject": ("close the item without issuing anything, with the reason", run_reject, _reject_arguments),
    "reassign": ("assign the item to another analyst", run_reassign, _reassign_arguments),
}
