"""State every page shares: settings from the environment, heavy objects shared by all sessions
(``st.cache_resource``), the session's actor and issuer, and how a page says what is missing.

Environment: ``LENDSAFE_HOME`` (runtime state), ``LENDSAFE_DATABASE_URL`` (audit store),
``LENDSAFE_USE_LLM=0`` (deterministic writer only), ``LENDSAFE_NOTICE_SETTINGS`` (TOML/JSON file of
``NoticeSettings``; default: the demo lender).
"""
from __future__ import annotations

import logging
import os
import threading
import uuid
from typing import Any, Callable

import streamlit as st

from lendsafe.config import Settings
from lendsafe.errors import LendSafeError
from lendsafe.redaction import printable, redact_url

LOG = logging.getLogger("lendsafe.ui")
DATASET_KEY = "ls_dataset"
REFERENCE_KEY = "ls_reference"
CURRENT_KEY = "ls_current"
NOTICE_SETTINGS_ENV = "LENDSAFE_NOTICE_SETTINGS"
WARM_UP_QUERY = "specific principal reasons for adverse action"


# ---------------------------------------------------------------------------- settings

def available_datasets() -> list[str]:
    """Built-in datasets whose risk model is present."""
    from lendsafe.datasets import builtin_dataset_names
    from lendsafe.risk import model_dir

    base = Settings()
    return [name for name in builtin_dataset_names() if (model_dir(name, base) / "model.json").exists()]


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
    from lendsafe.notice import NoticeSettings

    return NoticeSettings.from_file(path) if path else NoticeSettings()


def notice_settings() -> Any:
    try:
        return _notice_settings(os.environ.get(NOTICE_SETTINGS_ENV, ""))
    except LendSafeError as exc:
        stop_with(f"Notice settings ({NOTICE_SETTINGS_ENV}) are invalid: {exc}", kind="error")


# ---------------------------------------------------------------------------- shared heavy objects

@st.cache_resource(show_spinner=False)
def _pipeline(key: str, _settings: Settings) -> Any:
    from lendsafe.pipeline import Pipeline

    return Pipeline(_settings)


def pipeline(dataset: str | None = None) -> Any:
    """The pipeline of a dataset, shared by every session (its parts load once, on first use)."""
    settings = app_settings(dataset)
    return _pipeline(settings_key(settings), settings)


@st.cache_resource(show_spinner=False)
def _audit_store(url: str, _settings: Settings) -> Any:
    from lendsafe.issuance import open_audit_store

    return open_audit_store(_settings)


def audit_store() -> Any:
    """The audit store at ``settings.database_url``, shared by every session."""
    from sqlalchemy.exc import SQLAlchemyError

    settings = app_settings()
    try:
        return _audit_store(settings.database_url, settings)
    except (LendSafeError, OSError, SQLAlchemyError) as exc:
        stop_with(redact_url(f"The audit store at {settings.database_url} cannot be opened: {exc}"), kind="error")


@st.cache_resource(show_spinner=False)
def _knowledge(key: str, _settings: Settings) -> Any:
    from lendsafe.retrieval import KnowledgeBase

    return KnowledgeBase(_settings)


def knowledge() -> Any:
    settings = app_settings()
    return _knowledge(settings_key(settings), settings)


@st.cache_resource(show_spinner=False)
def _warm_up(key: str, _pipeline: Any) -> threading.Thread:
    # not a daemon: a model half-loaded when the interpreter exits would abort it
    thread = threading.Thread(target=warm_parts, args=(_pipeline,), name="lendsafe-warm-up", daemon=False)
    thread.start()
    return thread


def warm_parts(shared: Any) -> None:
    """Load the risk model, the index with its embedding model and the writer, so that the first
    decision a user asks for does not wait for them. Failures are left for that decision to report."""
    steps: tuple[Callable[[], Any], ...] = (
        lambda: shared.scorer, lambda: shared.knowledge.search(WARM_UP_QUERY, k=1), shared.generator)
    for step in steps:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - the decision that needs the part reports it
            LOG.info("warm-up step failed: %s", exc)


def warm_up() -> None:
    """Start loading the current dataset's pipeline in the background (once per process)."""
    settings = app_settings()
    _warm_up(settings_key(settings), pipeline())


# ---------------------------------------------------------------------------- the session

def session_id() -> str:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is not None and ctx.session_id:
        return ctx.session_id
    return st.session_state.setdefault("ls_session_id", uuid.uuid4().hex)


def actor() -> str:
    """Who made a decision in the audit store: ``app:<session id>``."""
    return f"app:{session_id()}"


def issuer(dataset: str | None = None) -> Any:
    """Issues (decides, renders, checks, records) for this session; every app decision goes here."""
    from lendsafe.issuance import Issuer

    return Issuer(pipeline(dataset), notice_settings=notice_settings(), audit=audit_store(), actor=actor())


def current() -> dict[str, Any] | None:
    """The application being explored: {dataset, application, source, issued: {reference: Issued}}."""
    return st.session_state.get(CURRENT_KEY)


def current_reference() -> str:
    return st.session_state.get(REFERENCE_KEY) or app_settings().reference


def current_issued() -> Any | None:
    """The Issued of the current application under the selected reference (else any reference)."""
    state = current()
    if not state or not state["issued"]:
        return None
    return state["issued"].get(current_reference()) or next(iter(state["issued"].values()))


def issue_current(reference: str) -> Any | None:
    """Issue the current application under ``reference`` (once); errors are shown, never raised."""
    state = current()
    if not state or reference in state["issued"]:
        return state["issued"].get(reference) if state else None
    try:
        with st.spinner(f"Deciding and explaining ({reference} reference)…"):
            issued = issuer(state["dataset"]).issue(state["application"], reference=reference)
    except LendSafeError as exc:
        st.error("Nothing was issued:")
        st.text(printable(exc, keep_newlines=True))
        return None
    state["issued"][reference] = issued
    return issued


# ---------------------------------------------------------------------------- page helpers

def stop_with(message: str, kind: str = "info") -> None:
    """Say what is missing (or wrong) and stop the page."""
    getattr(st, kind)(message)
    st.stop()


def sidebar() -> None:
    """Dataset choice and what writes explanations, shown on every page."""
    datasets = available_datasets()
    if not datasets:
        stop_with("No risk model found under models/risk: run `lendsafe prepare` (or `make artifacts`).")
    with st.sidebar:
        if st.session_state.get(DATASET_KEY) not in datasets:
            default = current_dataset()
            st.session_state[DATASET_KEY] = default if default in datasets else datasets[0]
        st.selectbox("Dataset", datasets, key=DATASET_KEY, on_change=_dataset_changed,
                     help="the built-in dataset whose risk model decides applications")
        settings = app_settings()
        writer = "LoRA language model, verified (template fallback)" if settings.use_llm else \
            "deterministic template writer (LENDSAFE_USE_LLM=0)"
        st.caption(f"Explanations: {writer}")
        st.caption(f"Audit actor: `{actor()}`")


def _dataset_changed() -> None:
    for key in (CURRENT_KEY, "ls_form_problems", "ls_batch"):
        st.session_state.pop(key, None)
