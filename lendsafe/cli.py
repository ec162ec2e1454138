"""`lendsafe` command line: a thin layer over the library.

Each area registers its commands from a module in ``lendsafe.commands``; heavy libraries are
imported inside the command functions so ``lendsafe --help`` stays fast.
"""
from __future__ import annotations

import argparse
import sys

from lendsafe.commands import (audit, evaluate, explain, fairness, finetune, knowledge, notices, prepare, recourse,
                               review, risk, serve, users, verify)
from lendsafe.errors import InvalidApplicationError, LendSafeError

# Each area's commands, in the order `lendsafe --help` lists them.
COMMAND_MODULES = (risk, knowledge, explain, verify, finetune, notices, review, evaluate, audit, prepare, fairness,
                   users, recourse, serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lendsafe", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    forwarded = serve.forward(argv)          # a running `lendsafe serve` worker answers, when there is one
    if forwarded is not None:
        return forwarded
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except InvalidApplicationError as exc:
        print("error: invalid application:", *(f"  - {p}" for p in exc.problems), sep="\n", file=sys.stderr)
        return 2
    except LendSafeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
