"""`lendsafe users add|list|remove`: the dashboard's local users (salted Argon2id hashes, roles).

Passwords are read from standard input (one line, when it is not a terminal) or from a prompt
asked twice; never from the command line, where they would stay in the shell history and ``ps``.
"""
from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from lendsafe.identity import MIN_PASSWORD_CHARS, ROLES, UserError, UsersFile, ensure_first_admin, users_path


def register(subparsers: argparse._SubParsersAction) -> None:
    users = subparsers.add_parser("users", help="add, list and remove the dashboard's local users")
    users.add_argument("--file", type=Path, help="users file (default: LENDSAFE_USERS_FILE or "
                                                  "<LENDSAFE_HOME>/users.json)")
    actions = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add a user; the password is read from stdin or a prompt")
    add.add_argument("name", help="user name (letters, digits, . _ @ + -); an OIDC user's email gives it a role")
    add.add_argument("--role", choices=ROLES, default="analyst", help="analyst, reviewer or admin (default analyst)")
    add.add_argument("--replace", action="store_true", help="set a new password and role for an existing user")
    add.set_defaults(func=run_add)
    listing = actions.add_parser("list", help="list users and roles (never hashes)")
    listing.set_defaults(func=run_list)
    remove = actions.add_parser("remove", help="remove a user")
    remove.add_argument("name")
    remove.set_defaults(func=run_remove)


def _users(args: argparse.Namespace) -> UsersFile:
    return UsersFile(args.file or users_path())


def read_password(stream=None) -> str:
    """The password: one line of a piped stdin, else typed twice at a hidden prompt."""
    stream = stream or sys.stdin
    if not stream.isatty():
        return stream.readline().rstrip("\r\n")
    first = getpass.getpass(f"Password (at least {MIN_PASSWORD_CHARS} characters): ")
    if getpass.getpass("Password again: ") != first:
        raise UserError("the two passwords differ; nothing was changed")
    return first


def run_add(args: argparse.Namespace) -> int:
    identity = _users(args).add(args.name, read_password(), args.role, replace=args.replace)
    print(f"{'updated' if args.replace else 'added'} {identity.name} ({identity.role})")
    return 0


def run_list(args: argparse.Namespace) -> int:
    for user in _users(args).list():
        print(f"{user['name']:<40} {user['role']:<9} {user['created']}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    _users(args).remove(args.name)
    print(f"removed {args.name.strip().lower()}")
    return 0


def first_admin(path: Path | None = None) -> dict:
    """For `lendsafe prepare`: create the first admin when there are no users, printing its password once."""
    users = UsersFile(path or users_path())
    created = ensure_first_admin(users)
    if created is None:
        return {"users_file": str(users.path), "created": None}
    name, password = created
    print(f"prepare: created the dashboard user {name!r} (role admin) with the password\n\n    {password}\n\n"
          "It is shown only this once and stored hashed in the users file. Sign in with it, add analysts with "
          "`lendsafe users add NAME --role analyst`, and change it with `lendsafe users add admin --role admin "
          "--replace`.", flush=True)
    return {"users_file": str(users.path), "created": name}
