"""Notices: preview and download the current decision's adverse-action notice; batch a CSV of
applications into a zip of notices with a manifest, listing the rows that could not be read."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import streamlit as st

from lendsafe.datasets import load_spec
from lendsafe.errors import LendSafeError
from lendsafe.ui import common, display, tables

BATCH_KEY = "ls_batch"
ERRORS_LISTED = 50


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


def run_uploaded_batch(upload: Any, dataset: str) -> dict[str, Any]:
    """Decide every row of an uploaded CSV under a progress bar; returns what the page shows."""
    from lendsafe.batch import run_batch, zip_batch

    bar = st.progress(0.0, text="Reading the CSV…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Decided {done} of {total} rows")

    with tempfile.TemporaryDirectory(prefix="lendsafe-batch-") as folder:
        source = Path(folder) / "applications.csv"
        source.write_bytes(upload.getvalue())
        result = run_batch(source, Path(folder) / "out", common.pipeline(dataset), common.notice_settings(),
                           progress, dataset=dataset, audit=common.audit_store(), actor=common.actor())
        archive = zip_batch(result)
    bar.progress(1.0, text=f"Done: {result.processed} decided, {len(result.errors)} invalid row(s)")
    return {"file": upload.name, "dataset": dataset, "zip": archive,
            "rows": [r.as_row() for r in result.rows],
            "errors": [{"row": e.row, "problems": "; ".join(e.problems)} for e in result.errors],
            "notices": len(result.notices), "failed_checks": len(result.failed_checks)}


def batch() -> None:
    st.header("Batch")
    dataset = common.current_dataset()
    spec = load_spec(dataset)
    st.write(f"Upload a CSV of {spec.title} applications: one column per field "
             f"({', '.join(f.name for f in spec.input_fields)}), optionally applicant_name, applicant_address, "
             "application_id, application_date, loan_amount, product. Invalid rows are listed with their "
             "problems while the valid ones are decided.")
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
    cols = st.columns(4)
    cols[0].metric("Decided", len(outcome["rows"]))
    cols[1].metric("Notices", outcome["notices"])
    cols[2].metric("Invalid rows", len(outcome["errors"]))
    cols[3].metric("Failed notice checks", outcome["failed_checks"])
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
    single_notice()
    st.divider()
    batch()


if __name__ == "__main__":
    render()
