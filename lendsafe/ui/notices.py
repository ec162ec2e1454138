"""Notices: the lender settings notices are made with (a settings file can be uploaded; without one,
notices are stamped SPECIMEN); preview and download the current decision's adverse-action notice;
batch a CSV of applications into a zip of notices with a manifest, listing the rows that could not
be read and writing a notice of incompleteness for rows that lack required fields."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import streamlit as st

from lendsafe.datasets import load_spec
from lendsafe.errors import LendSafeError
from lendsafe.redaction import printable
from lendsafe.ui import common, display, tables


class BatchRefused(LendSafeError):
    """The uploaded batch could not run; the message names the upload, not the server's files."""

BATCH_KEY = "ls_batch"
SETTINGS_KEY = "ls_notice_settings"        # (file name, NoticeSettings) uploaded in this session
ERRORS_LISTED = 50
SETTINGS_SUFFIXES = (".toml", ".json")
# The largest batch CSV the page takes: about 200,000 rows of a built-in dataset (a row is ~150-250 bytes).
# .streamlit/config.toml sets server.maxUploadSize to the same number of megabytes.
BATCH_MAX_MB = 50


def parse_settings_upload(name: str, data: bytes) -> Any:
    """NoticeSettings from an uploaded TOML or JSON file; LendSafeError naming the field otherwise."""
    from lendsafe.errors import ConfigurationError
    from lendsafe.notice import NoticeSettings

    if Path(name).suffix.lower() not in SETTINGS_SUFFIXES:
        raise ConfigurationError(f"settings file must be .toml or .json; got {printable(name)!r}")
    return NoticeSettings.from_bytes(name, data)


def plain(label: str, text: Any) -> None:
    """User data (names, file names, messages that echo them) as plain text: never markdown, links or HTML."""
    st.text(f"{label}{printable(text, keep_newlines=True)}")


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
        st.error("The uploaded settings file was not used:")
        plain("", problem)
    settings = notice_settings()
    uploaded = st.session_state.get(SETTINGS_KEY)
    source = f"the uploaded file {uploaded[0]}" if uploaded else f"{common.NOTICE_SETTINGS_ENV} or the demo values"
    if settings.is_specimen:
        st.warning("**SPECIMEN**: the lender settings are not configured "
                   f"({', '.join(settings.placeholders) or 'specimen = true'}), so every notice is stamped "
                   "SPECIMEN and must not be sent. Upload the lender's settings file above.")
    else:
        st.success("Notices are made for the creditor below, with the lender's own settings.")
        plain("Creditor: ", settings.creditor_name)
        plain("Settings from: ", source)


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
    st.write(f"Notice **{notice.document_id}** dated {notice.notice_date}: {len(notice.reasons)} principal "
             f"reason(s), {decision.reference} reference, explanation by the {decision.writer} writer"
             + (f"; audit record #{issued.record_id}." if issued.record_id is not None else "."))
    plain("Applicant: ", notice.applicant_name or "(unnamed)")
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
        st.error("Nothing was issued:")
        plain("", exc)
        return
    st.rerun()


def run_uploaded_batch(upload: Any, dataset: str) -> dict[str, Any]:
    """Decide every row of an uploaded CSV under a progress bar; returns what the page shows."""
    from lendsafe.batch import run_batch, zip_batch

    bar = st.progress(0.0, text="Reading the CSV…")

    def progress(done: int, total: int, *_rate_and_eta: float) -> None:
        bar.progress(done / max(total, 1), text=f"Decided {done} of {total} rows")

    with tempfile.TemporaryDirectory(prefix="lendsafe-batch-") as folder:
        source = Path(folder) / "applications.csv"
        source.write_bytes(upload.getvalue())
        settings = notice_settings()
        try:
            result = run_batch(source, Path(folder) / "out", common.pipeline(dataset), settings,
                               progress, dataset=dataset, audit=common.audit_store(), actor=common.actor())
        except (LendSafeError, OSError) as exc:     # said without the server's temporary paths
            raise BatchRefused(str(exc).replace(str(source), upload.name).replace(folder, "")) from None
        archive = zip_batch(result)
    bar.progress(1.0, text=f"Done: {result.processed} decided, {len(result.errors)} invalid row(s)")
    return {"file": upload.name, "dataset": dataset, "zip": archive,
            "rows": [r.as_row() for r in result.rows],
            "errors": [{"row": e.data_row, "problems": "; ".join(e.problems)} for e in result.errors],
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
    upload = st.file_uploader(f"Applications CSV (at most {BATCH_MAX_MB} MB)", type=["csv"], key="ls_batch_upload")
    too_big = upload is not None and upload.size > BATCH_MAX_MB * 1024 * 1024
    if too_big:
        st.error(f"This file is {upload.size / 1024 / 1024:,.1f} MB; the batch page takes CSV files of at most "
                 f"{BATCH_MAX_MB} MB. Split it, or run `lendsafe notices` on the command line.")
    if st.button("Run the batch", type="primary", disabled=upload is None or too_big, key="ls_batch_run"):
        try:
            st.session_state[BATCH_KEY] = run_uploaded_batch(upload, dataset)
        except BatchRefused as exc:
            st.error("The batch could not run:")
            plain("", exc)
    outcome = st.session_state.get(BATCH_KEY)
    if outcome:
        batch_outcome(outcome)


def batch_outcome(outcome: dict[str, Any]) -> None:
    import pandas as pd

    st.subheader("Batch outcome")
    plain("File: ", outcome["file"])
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
        st.error(f"{len(outcome['errors'])} row(s) were not decided; "
                 + (f"the first {len(listed)} are listed below, " if len(outcome["errors"]) > len(listed) else "")
                 + "all of them are in errors.csv inside the zip.")
        st.dataframe(pd.DataFrame(listed, columns=["row", "problems"]), hide_index=True, width="stretch")
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
