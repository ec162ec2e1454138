"""Notices: the lender settings notices are made with (a settings file can be uploaded; without one,
notices are stamped SPECIMEN); preview and download the current decision's adverse-action notice;
batch a CSV of applications into a zip of notices with a manifest, listing the rows that could not
be read and writing a notice of incompleteness for rows that lack required fields."""
from __future__ import annotations

import json
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import streamlit as st

from lendsafe.datasets import load_spec
from lendsafe.errors import LendSafeError
from lendsafe.ui import common, display, tables

BATCH_KEY = "ls_batch"
SETTINGS_KEY = "ls_notice_settings"        # (file name, NoticeSettings) uploaded in this session
ERRORS_LISTED = 50
SETTINGS_READERS = {".toml": lambda data: tomllib.loads(data.decode("utf-8")), ".json": json.loads}


def parse_settings_upload(name: str, data: bytes) -> Any:
    """NoticeSettings from an uploaded TOML or JSON file; LendSafeError naming the field otherwise."""
    from lendsafe.errors import ConfigurationError
    from lendsafe.notice import NoticeSettings

    reader = SETTINGS_READERS.get(Path(name).suffix.lower())
    if reader is None:
        raise ConfigurationError(f"settings file must be .toml or .json; got {name!r}")
    try:
        return NoticeSettings.from_dict(reader(data))
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{name} is not a readable settings file: {exc}") from None


def notice_settings() -> Any:
    """The settings this session's notices are made with: the uploaded file, else the environment's."""
    uploaded = st.session_state.get(SETTINGS_KEY)
    return uploaded[1] if uploaded else common.notice_settings()


def _settings_uploaded() -> None:
    upload = st.session_state.get("ls_settings_upload")
    st.session_state.pop(SETTINGS_KEY, None)
    st.session_state.pop("ls_settings_problem", None)
    if upload is None:
        return
    try:
        st.session_state[SETTINGS_KEY] = (upload.name, parse_settings_upload(upload.name, upload.getvalue()))
    except LendSafeError as exc:
        st.session_state["ls_settings_problem"] = f"{upload.name} was not used: {exc}"


def lender_settings() -> None:
    """Which settings notices are made with, a SPECIMEN warning while they are the demo values, and an uploader."""
    st.header("Lender settings")
    st.file_uploader("Lender settings file (TOML or JSON, like data/examples/lender.toml)", type=["toml", "json"],
                     key="ls_settings_upload", on_change=_settings_uploaded)
    if problem := st.session_state.get("ls_settings_problem"):
        st.error(tables.md_escape(problem))
    settings = notice_settings()
    uploaded = st.session_state.get(SETTINGS_KEY)
    source = f"the uploaded file {uploaded[0]}" if uploaded else f"${common.NOTICE_SETTINGS_ENV} or the demo values"
    if settings.is_specimen:
        st.warning("**SPECIMEN**: the lender settings are not configured "
                   f"({', '.join(settings.placeholders) or 'specimen = true'}), so every notice is stamped "
                   "SPECIMEN and must not be sent. Upload the lender's settings file above.")
    else:
        st.success(f"Notices are made for **{tables.md_escape(settings.creditor_name)}** (settings from "
                   f"{tables.md_escape(source)}).")


def single_notice() -> None:
    st.header("Current decision")
    issued = common.current_issued()
    if issued is None:
        st.info("No decision yet: decide an application on the Decision explorer first.")
        st.page_link("lendsafe/ui/explorer.py", label="Open the Decision explorer", icon=":material/search:")
        return
    decision = issued.decision
    if not decision.denied:
        st.info(f"The current application was approved (risk {decision.risk:.1%}): no adverse-action notice "
                "is sent for an approval.")
        return
    notice = issued.notice
    if notice.specimen:
        st.warning("This notice is a **SPECIMEN** (made with demonstration lender settings): do not send it.")
    if not _made_with(notice, notice_settings()):
        _offer_reissue(decision)
    st.write(f"Notice **{notice.document_id}** dated {notice.notice_date} for "
             f"{tables.md_escape(notice.applicant_name or 'an unnamed applicant')} — {len(notice.reasons)} principal reason(s), "
             f"{decision.reference} reference, explanation by the {decision.writer} writer"
             + (f"; audit record #{issued.record_id}." if issued.record_id is not None else "."))
    st.download_button("Download the notice PDF", issued.pdf, file_name=f"{notice.document_id}.pdf",
                       mime="application/pdf", type="primary", on_click="ignore", key="ls_notice_download")
    preview, check = st.columns([3, 2])
    with preview:
        display.pdf_preview(issued.pdf, notice.document_id)
    with check:
        st.subheader("Completeness check")
        st.write("All required elements are present." if issued.passed else
                 "The notice misses: " + ", ".join(issued.check.failures()))
        checks = tables.notice_check_frame(issued.check)
        st.dataframe(checks, hide_index=True, width="stretch", height=35 * (len(checks) + 1) + 3)


def _made_with(notice: Any, settings: Any) -> bool:
    """Whether `notice` was made with `settings` (same creditor, same specimen marking)."""
    from lendsafe.notice import TEXT_LIMITS, clean_text

    return (notice.specimen == settings.is_specimen
            and notice.creditor_name == clean_text(settings.creditor_name, TEXT_LIMITS["name"]))


def _offer_reissue(decision: Any) -> None:
    """The current notice was made with other settings: offer to issue it again with this page's settings."""
    if not st.button("Issue this notice again with the lender settings above", key="ls_reissue"):
        return
    from lendsafe.issuance import Issuer

    issuer = Issuer(common.pipeline(decision.dataset), notice_settings=notice_settings(), audit=common.audit_store(),
                    actor=common.actor())
    try:
        common.current()["issued"][decision.reference] = issuer.issue_decision(decision)
    except LendSafeError as exc:
        st.error(f"Nothing was issued: {tables.md_escape(exc)}")
        return
    st.rerun()


def run_uploaded_batch(upload: Any, dataset: str) -> dict[str, Any]:
    """Decide every row of an uploaded CSV under a progress bar; returns what the page shows."""
    from lendsafe.batch import run_batch, zip_batch

    bar = st.progress(0.0, text="Reading the CSV…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Decided {done} of {total} rows")

    with tempfile.TemporaryDirectory(prefix="lendsafe-batch-") as folder:
        source = Path(folder) / "applications.csv"
        source.write_bytes(upload.getvalue())
        settings = notice_settings()
        result = run_batch(source, Path(folder) / "out", common.pipeline(dataset), settings,
                           progress, dataset=dataset, audit=common.audit_store(), actor=common.actor())
        archive = zip_batch(result)
    bar.progress(1.0, text=f"Done: {result.processed} decided, {len(result.errors)} invalid row(s)")
    return {"file": upload.name, "dataset": dataset, "zip": archive,
            "rows": [r.as_row() for r in result.rows],
            "errors": [{"row": e.row, "problems": "; ".join(e.problems)} for e in result.errors],
            "notices": len(result.notices), "incomplete": len(result.incomplete),
            "failed_checks": len(result.failed_checks), "specimen": settings.is_specimen}


def batch() -> None:
    st.header("Batch")
    dataset = common.current_dataset()
    spec = load_spec(dataset)
    st.write(f"Upload a CSV of {spec.title} applications: one column per field "
             f"({', '.join(f.name for f in spec.input_fields)}), optionally applicant_name, applicant_address, "
             "application_id, application_date, loan_amount, product. Invalid rows are listed with their "
             "problems while the valid ones are decided; a row with a blank required cell gets a notice of "
             "incompleteness (Reg B 1002.9(c)) naming what is missing.")
    st.download_button("Download a sample CSV", tables.sample_csv(spec), file_name=f"{dataset}_sample.csv",
                       mime="text/csv", on_click="ignore", key="ls_sample_csv")
    upload = st.file_uploader("Applications CSV", type=["csv"], key="ls_batch_upload")
    if st.button("Run the batch", type="primary", disabled=upload is None, key="ls_batch_run"):
        try:
            st.session_state[BATCH_KEY] = run_uploaded_batch(upload, dataset)
        except (LendSafeError, UnicodeDecodeError, OSError) as exc:
            st.error(f"The batch could not run: {tables.md_escape(exc)}")
    outcome = st.session_state.get(BATCH_KEY)
    if outcome:
        batch_outcome(outcome)


def batch_outcome(outcome: dict[str, Any]) -> None:
    import pandas as pd

    st.subheader(f"Batch of {outcome['file']}")
    if outcome.get("specimen"):
        st.warning("These notices are stamped **SPECIMEN** (demonstration lender settings): do not send them.")
    cols = st.columns(5)
    cols[0].metric("Decided", len(outcome["rows"]))
    cols[1].metric("Notices", outcome["notices"])
    cols[2].metric("Incomplete", outcome.get("incomplete", 0), help="notices of incompleteness (Reg B 1002.9(c))")
    cols[3].metric("Invalid rows", len(outcome["errors"]))
    cols[4].metric("Failed notice checks", outcome["failed_checks"])
    st.download_button("Download the notices (zip with manifest)", outcome["zip"],
                       file_name=f"notices_{Path(outcome['file']).stem}.zip", mime="application/zip",
                       type="primary", on_click="ignore", key="ls_batch_zip")
    if outcome["errors"]:
        listed = outcome["errors"][:ERRORS_LISTED]
        st.error(f"{len(outcome['errors'])} row(s) were not decided:\n"
                 + "\n".join(f"- row {e['row']}: {tables.md_escape(e['problems'])}" for e in listed)
                 + ("\n- … (all of them in errors.csv inside the zip)" if len(outcome["errors"]) > len(listed) else ""))
    st.dataframe(pd.DataFrame(outcome["rows"]), hide_index=True, width="stretch")


def render() -> None:
    st.title("Notices")
    lender_settings()
    st.divider()
    single_notice()
    st.divider()
    batch()


if __name__ == "__main__":
    render()
