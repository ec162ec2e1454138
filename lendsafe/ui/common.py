"""State every page shares: settings from the environment, the engine (models shared by all sessions,
warmed in the background), who is signed in, this session's work per dataset, and issuing.

Environment: ``LENDSAFE_HOME`` (runtime state), ``LENDSAFE_DATABASE_URL`` (audit store),
``LENDSAFE_USE_LLM=0`` (deterministic writer only), ``LENDSAFE_NOTICE_SETTINGS`` (TOML/JSON file of
``NoticeSettings``; default: the demo lender), ``LENDSAFE_USERS_FILE`` (local users; default
``<LENDSAFE_HOME>/users.json``). An ``[auth]`` section in ``.streamlit/secrets.toml`` turns on
OIDC sign-in (``st.login``).
"""
from __future__ import annotations

import itertools
import logging
import os
import time
from typing import Any

import streamlit as st

from lendsafe.config import Settings, builtin_dataset_names
from lendsafe.config import dataset_title as spec_title
from lendsafe.decide.decision import REFERENCES
from lendsafe.errors import LendSafeError
from lendsafe.identity import Identity, UsersFile, oidc_identity, users_path
from lendsafe.redaction import printable, redact_url
from lendsafe.ui import engine as engines

LOG = logging.getLogger("lendsafe.ui")
DATASET_KEY = "ls_dataset"
REFERENCE_KEY = "ls_reference"
WRITER_KEY = "ls_writer"
WORK_KEY = "ls_work"                 # dataset -> {"current": entry or None, "issued": [entries], "batch": outcome}
IDENTITY_KEY = "ls_identity"
FAILURES_KEY = "ls_signin_failures"
NOTICE_SETTINGS_ENV = "LENDSAFE_NOTICE_SETTINGS"
SIGN_IN_LOCK_S = 30                  # after 5 wrong passwords in a session, wait this long
WRITER_LABELS = {"auto": "Language model, verified", "template": "Template writer"}
WRITER_HELP = ("Language model: the LoRA adapter writes, the verifier checks every sentence, and the template "
               "writer takes over if the text fails twice. Template writer: deterministic catalog sentences.")
_COUNTER = itertools.count(1)


# ---------------------------------------------------------------------------- settings

def available_datasets() -> list[str]:
    """Built-in datasets whose risk model is present."""
    base = Settings()
    return [name for name in builtin_dataset_names() if (base.risk_model_dir(name) / "model.json").exists()]


def current_dataset() -> str:
    return st.session_state.get(DATASET_KEY) or Settings.__dataclass_fields__["dataset"].default


def app_settings(dataset: str | None = None) -> Settings:
    """Settings read from the environment on every run; a bad value stops the page with its message."""
    try:
        return Settings(dataset=dataset or current_dataset())
    except LendSafeError as exc:
        stop_with(f"LendSafe settings are invalid: {exc}", kind="error")
        raise  # unreachable: st.stop() raises


def settings_key(settings: Settings) -> str:
    return repr(settings)


@st.cache_resource(show_spinner=False)
def _notice_settings(path: str) -> Any:
    from lendsafe.notice.settings import NoticeSettings

    return NoticeSettings.from_file(path) if path else NoticeSettings()


def notice_settings() -> Any:
    """The notice settings this session issues with: an uploaded file (Notices page), else the environment's."""
    uploaded = st.session_state.get("ls_notice_settings")
    if uploaded:
        return uploaded[1]
    try:
        return _notice_settings(os.environ.get(NOTICE_SETTINGS_ENV, ""))
    except LendSafeError as exc:
        stop_with(f"Notice settings ({NOTICE_SETTINGS_ENV}) are invalid: {exc}", kind="error")


# ---------------------------------------------------------------------------- shared heavy objects

def engine() -> engines.Engine:
    """The process's engine (knowledge base, language model, pipelines), loading in the background."""
    return engines.engine(app_settings())


def pipeline(dataset: str | None = None, reference: str | None = None, writer: str | None = None) -> Any:
    """The shared pipeline for a dataset under this session's reference and writer."""
    return engine().pipeline(dataset or current_dataset(), reference or current_reference(), writer or current_writer())


@st.cache_resource(show_spinner=False)
def _audit_store(url: str, _settings: Settings) -> Any:
    from lendsafe.issue.issuer import open_audit_store

    return open_audit_store(_settings)


def audit_store() -> Any:
    """The audit store at ``settings.database_url``, shared by every session."""
    from sqlalchemy.exc import SQLAlchemyError

    settings = app_settings()
    try:
        return _audit_store(settings.database_url, settings)
    except (LendSafeError, OSError, SQLAlchemyError) as exc:
        stop_with(redact_url(f"The audit store at {settings.database_url} cannot be opened: {exc}"), kind="error")


def knowledge() -> Any:
    return engine().knowledge


def warm_up() -> None:
    """Start loading the models in the background (once per server process)."""
    engine()


def page_drawn() -> None:
    """The page is on screen: the models' loading may now take the CPU (it waits a moment for the first page)."""
    engine().go()


# ---------------------------------------------------------------------------- identity

def oidc_configured() -> bool:
    """True when ``[auth]`` is configured in Streamlit secrets (then ``st.login`` signs people in)."""
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no secrets file at all
        return False


def identity() -> Identity | None:
    """Who is signed in: the OIDC user (when configured and signed in), else the local user, else None."""
    if oidc_configured() and getattr(st.user, "is_logged_in", False):
        return oidc_identity(st.user.get("email"), UsersFile(users_path(app_settings())))
    return st.session_state.get(IDENTITY_KEY)


def can_issue() -> bool:
    who = identity()
    return bool(who and who.can_issue)


def actor() -> str | None:
    """The audit actor of this session (``local:alice``, ``oidc:alice@example.com``); None when anonymous."""
    who = identity()
    return who.actor if who else None


def _sign_in() -> None:
    name, password = st.session_state.get("ls_signin_name", ""), st.session_state.get("ls_signin_password", "")
    st.session_state["ls_signin_password"] = ""
    failures, since = st.session_state.get(FAILURES_KEY, (0, 0.0))
    if failures >= 5 and time.monotonic() - since < SIGN_IN_LOCK_S:
        st.session_state["ls_signin_problem"] = f"Too many wrong passwords: wait {SIGN_IN_LOCK_S} s and try again."
        return
    try:
        who = UsersFile(users_path(app_settings())).authenticate(name, password)
    except LendSafeError as exc:
        st.session_state["ls_signin_problem"] = str(exc)
        return
    if who is None:
        st.session_state[FAILURES_KEY] = (failures + 1, time.monotonic())
        st.session_state["ls_signin_problem"] = "User name or password is wrong."
        return
    st.session_state.pop(FAILURES_KEY, None)
    st.session_state.pop("ls_signin_problem", None)
    st.session_state[IDENTITY_KEY] = who


def _sign_out() -> None:
    st.session_state.pop(IDENTITY_KEY, None)


def account_box() -> None:
    """Sign in (OIDC or the local users file), or who is signed in with a sign-out button."""
    who = identity()
    if who is not None:
        role = who.role or "no role: may explore, not issue"
        st.text(f"Signed in: {printable(who.actor)}\nRole: {role}")
        if who.provider == "oidc":
            st.button("Sign out", on_click=st.logout, key="ls_signout")
        else:
            st.button("Sign out", on_click=_sign_out, key="ls_signout")
        return
    st.caption("Not signed in: you can explore decisions; issuing needs an analyst's sign-in.")
    if oidc_configured():
        st.button("Sign in", on_click=st.login, key="ls_oidc_login", type="primary")
        return
    with st.expander("Sign in to issue notices"):
        st.text_input("User name", key="ls_signin_name", autocomplete="username")
        st.text_input("Password", key="ls_signin_password", type="password", autocomplete="current-password")
        st.button("Sign in", on_click=_sign_in, key="ls_signin_button", type="primary")
        if problem := st.session_state.get("ls_signin_problem"):
            st.error(problem)


# ---------------------------------------------------------------------------- this session's work

def work(dataset: str | None = None) -> dict[str, Any]:
    """This session's work on a dataset (kept when the dataset is switched and back)."""
    return st.session_state.setdefault(WORK_KEY, {}).setdefault(dataset or current_dataset(),
                                                                 {"current": None, "issued": [], "batch": None})


def current() -> dict[str, Any] | None:
    """The application being explored on this dataset: {id, dataset, application, source, inputs, drafts, issued}."""
    return work()["current"]


def start_entry(dataset: str, application: dict[str, Any], source: str, inputs: Any) -> dict[str, Any]:
    """Make an application the current one; ``inputs`` is what it was made from (to notice edits)."""
    entry = {"id": next(_COUNTER), "dataset": dataset, "application": application, "source": source,
             "inputs": inputs, "drafts": {}, "issued": {}}
    work(dataset)["current"] = entry
    return entry


def current_reference() -> str:
    return st.session_state.get(REFERENCE_KEY) or app_settings().reference


def current_writer() -> str:
    return st.session_state.get(WRITER_KEY) or "auto"


def issue(entry: dict[str, Any], reference: str) -> Any | None:
    """Issue the draft shown (exactly that decision) as the signed-in user: notice and audit record."""
    from lendsafe.issue.issuer import Issuer

    draft = entry["drafts"].get(reference)
    who = identity()
    if draft is None or who is None or not who.can_issue:
        st.error("Only a signed-in analyst, reviewer or admin can issue a notice.")
        return None
    issuer = Issuer(pipeline(entry["dataset"], reference), notice_settings=notice_settings(), audit=audit_store(),
                    actor=who.actor)
    try:
        issued = issuer.issue(draft.decision)
    except LendSafeError as exc:
        st.error("Nothing was issued:")
        st.text(printable(exc, keep_newlines=True))
        return None
    entry["issued"][reference] = issued
    work(entry["dataset"])["issued"].append({"entry": entry, "reference": reference, "issued": issued,
                                             "actor": who.actor})
    what = f"notice {issued.notice.document_id}" if issued.notice is not None else "approval"
    st.toast(f"Issued {what}: audit record #{issued.record_id} by {who.actor}", icon=":material/verified:")
    return issued


# ---------------------------------------------------------------------------- page helpers

def stop_with(message: str, kind: str = "info") -> None:
    """Say what is missing (or wrong) and stop the page."""
    getattr(st, kind)(message)
    st.stop()


def sidebar() -> None:
    """Dataset, reason reference and writer of this session; the models' loading state; who is signed in."""
    datasets = available_datasets()
    if not datasets:
        stop_with("No risk model found under models/risk: run `lendsafe prepare` (or `make artifacts`).")
    with st.sidebar:
        if st.session_state.get(DATASET_KEY) not in datasets:
            default = current_dataset()
            st.session_state[DATASET_KEY] = default if default in datasets else datasets[0]
        st.selectbox("Dataset", datasets, key=DATASET_KEY, format_func=dataset_title,
                     help="the built-in dataset whose risk model decides applications; each keeps its own work")
        st.session_state.setdefault(REFERENCE_KEY, app_settings().reference)
        st.radio("Reason reference", REFERENCES, key=REFERENCE_KEY, horizontal=True,
                 help="Reg B comment 9(b)(2)-5: compare the applicant with the average of all applicants "
                      "(population) or with applicants at or just above the passing cutoff (cutoff).")
        st.session_state.setdefault(WRITER_KEY, "auto" if app_settings().use_llm else "template")
        options = list(WRITER_LABELS) if app_settings().use_llm else ["template"]
        st.radio("Explanation writer", options, key=WRITER_KEY, format_func=WRITER_LABELS.get, help=WRITER_HELP)
        models_state()
        st.divider()
        account_box()


def models_state() -> None:
    """One line while the language model loads; nothing once all is ready."""
    shared = engine()
    if shared.llm_loading:
        st.caption(f":material/hourglass_top: Language model loading "
                   f"({shared.parts['language model'].seconds():.0f} s so far): drafts use the template writer "
                   "until it is ready.")
    elif shared.settings.use_llm and shared.parts["language model"].error:
        st.caption(":material/warning: Language model unavailable: the template writer writes every explanation.")


def dataset_title(name: str) -> str:
    title = spec_title(name)
    return name if title == name else f"{name} - {title}"
