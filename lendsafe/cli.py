"""`lendsafe` command line: a thin layer over the library.

Each area registers its commands from a module in ``lendsafe.commands``; heavy libraries are
imported inside the command functions so ``lendsafe --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from lendsafe.errors import InvalidApplicationError, LendSafeError

COMMAND_MODULES = (
    "lendsafe.commands.risk",
    "lendsafe.commands.knowledge",
    "lendsafe.commands.explain",
    "lendsafe.commands.verify",
    "lendsafe.commands.finetune",
    "lendsafe.commands.notices",
    "lendsafe.commands.evaluate",
    "lendsafe.commands.audit",
    "lendsafe.commands.prepare",
    "lendsafe.commands.fairness",
    "lendsafe.commands.users",
    "lendsafe.commands.recourse",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lendsafe", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
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
