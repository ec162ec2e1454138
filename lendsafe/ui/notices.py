"""Notices: the lender settings notices are made with (a settings file can be uploaded; without one,
notices are stamped SPECIMEN); preview and download the notices issued in this session; batch a CSV
of applications, after a confirmation, into a zip of notices with a manifest, listing the rows that
were not issued and writing a notice of incompleteness for rows that lack required fields."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import streamlit as st

from lendsafe.decide.specs import load_spec
from lendsafe.errors import LendSafeError
from lendsafe.redaction import printable
from lendsafe.ui import common, display, engine, fields, record_rows


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
    from lendsafe.notice.settings import NoticeSettings

    if Path(name).suffix.lower() not in SETTINGS_SUFFIXES:
        raise ConfigurationError(f"settings file must be .toml or .json; got {printable(name)!r}")
    return NoticeSettings.from_bytes(name, data)


def plain(label: str, text: Any) -> None:
    """User data (names, file names, messages that echo them) as plain text: never markdown, links or HTML."""
    st.text(f"{label}{printable(text, keep_newlines=True)}")


def notice_settings() -> Any:
    """The settings this session's notices are made with: the uploaded file, else the environment's."""
    return common.notice_settings()


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


def session_notices() -> None:
    """The notices issued in this session (every dataset), one previewed; the current draft pointed to."""
    st.header("Issued in this session")
    held_in_session()
    issued = [item for work in st.session_state.get(common.WORK_KEY, {}).values() for item in work["issued"]]
    if not issued:
        st.info("Nothing issued yet in this session. Decide an application on the Decision explorer (a draft), "
                "then press Issue notice there (signed-in analysts).")
        st.page_link("lendsafe/ui/explorer.py", label="Open the Decision explorer", icon=":material/search:")
        return
    labels = {i: issued_label(item) for i, item in enumerate(issued)}
    chosen = st.selectbox("Notice", list(labels)[::-1], format_func=labels.get, key="ls_session_notice")
    item = issued[chosen]
    one_notice(item["issued"], item["actor"])


def held_in_session() -> None:
    """The drafts this session held for review instead of issuing (the Review page acts on them)."""
    held = [held for work in st.session_state.get(common.WORK_KEY, {}).values() if work.get("current")
            for held in (work["current"].get("held") or {}).values()]
    if held:
        st.info("Held for review, not sent: " + ", ".join(f"item #{h.item_id} ({h.why})" for h in held)
                + ". A reviewer approves, edits or rejects them on the Review page.")
        st.page_link("lendsafe/ui/review.py", label="Open the Review page", icon=":material/rate_review:")


def issued_label(item: dict[str, Any]) -> str:
    issued = item["issued"]
    decision = issued.decision
    name = (decision.application.get("applicant") or {}).get("name") or "unnamed applicant"
    what = issued.notice.document_id if issued.notice is not None else "approval (no notice)"
    return printable(f"#{issued.record_id} · {decision.dataset} · {name} · {what} · {decision.reference}")


def one_notice(issued: Any, actor: str) -> None:
    decision = issued.decision
    if issued.notice is None:
        st.write(f"Approved (risk {decision.risk:.1%}): recorded as audit record #{issued.record_id}; no "
                 "adverse-action notice is sent for an approval.")
        return
    notice = issued.notice
    if notice.specimen:
        st.warning("This notice is a **SPECIMEN** (made with demonstration lender settings): do not send it.")
    st.write(f"Notice **{notice.document_id}** dated {notice.notice_date}: {len(notice.reasons)} principal "
             f"reason(s), {decision.reference} reference, explanation by the {engine.writer_words(decision.writer)}; "
             f"audit record #{issued.record_id}.")
    plain("Applicant: ", notice.applicant_name or "(unnamed)")
    plain("Issued by: ", actor)
    st.download_button("Download the notice PDF", issued.pdf, file_name=f"{notice.document_id}.pdf",
                       mime="application/pdf", type="primary", on_click="ignore", key="ls_notice_download")
    preview, check = st.columns([3, 2])
    with preview:
        display.pdf_preview(issued.pdf, notice.document_id)
    with check:
        st.subheader("Completeness check")
        st.write("All required elements are present." if issued.passed else
                 "The notice misses: " + ", ".join(issued.check.failures()))
        checks = record_rows.notice_check_frame(issued.check)
        st.dataframe(checks, hide_index=True, width="stretch", height=35 * (len(checks) + 1) + 3,
                     column_config={"check": st.column_config.TextColumn(width="medium"), "detail": display.WIDE})


def eta_text(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "estimating"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def progress_text(done: int, total: int, rate: float, eta: float) -> str:
    """'Issued 12 of 40 rows · 3.1 rows/s · about 9 s left'."""
    pace = f" · {rate:.1f} rows/s · about {eta_text(eta)} left" if done < total else f" · {rate:.1f} rows/s"
    return f"Issued {done} of {total} rows" + (pace if rate > 0 else " · estimating the time left")


def run_uploaded_batch(upload: Any, choice: dict[str, str]) -> dict[str, Any]:
    """Decide and issue every row of an uploaded CSV with the session's dataset, reference and writer,
    under a per-row progress bar (rate and time left); returns what the page shows."""
    from lendsafe.issue.batch import run_batch
    from lendsafe.issue.batchfolder import zip_batch

    bar = st.progress(0.0, text="Reading the CSV…")

    def progress(done: int, total: int, rate: float = 0.0, eta: float = float("inf")) -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=progress_text(done, total, rate, eta))

    common.engine().wait_for_imports()
    with tempfile.TemporaryDirectory(prefix="lendsafe-batch-", dir=batch_root(choice)) as folder:
        source = Path(folder) / "applications.csv"
        source.write_bytes(upload.getvalue())
        settings = notice_settings()
        try:
            result = RUNNERS[choice["where"]](source, Path(folder) / "out", choice, settings, progress)
        except (LendSafeError, OSError) as exc:     # said without the server's temporary paths
            raise BatchRefused(str(exc).replace(str(source), upload.name).replace(folder, "")) from None
        archive = zip_batch(result)
    bar.progress(1.0, text=f"Done: {result.processed} decided, {len(result.errors)} not issued")
    return {"file": upload.name, **choice, "zip": archive, "actor": common.actor(),
            "rows": [r.as_row() for r in result.rows], "errors": [e.as_row() for e in result.errors],
            "notices": len(result.notices), "incomplete": len(result.incomplete), "held": len(result.held),
            "failed_checks": len(result.failed_checks), "specimen": settings.is_specimen}


def holder(choice: dict[str, Any]) -> Any:
    """The review policy's selection of denials to hold (every denial when the analyst asked)."""
    from lendsafe.review import ReviewPolicy, batch_holder

    return batch_holder(ReviewPolicy.from_env(), hold_all=bool(choice.get("hold_all")))


def run_here(source: Path, out: Path, choice: dict[str, Any], settings: Any, progress: Any) -> Any:
    from lendsafe.issue.batch import run_batch

    dataset, reference, writer = choice["dataset"], choice["reference"], choice["writer"]
    return run_batch(source, out, common.pipeline(dataset, reference, writer), settings, progress, dataset=dataset,
                     audit=common.audit_store(), actor=common.actor(), hold=holder(choice))


def run_on_configured_cluster(source: Path, out: Path, choice: dict[str, Any], settings: Any, progress: Any) -> Any:
    """The batch on the cluster LENDSAFE_CLUSTER names: its workers load their own models."""
    from lendsafe.issue.cluster import BatchJob, run_on_cluster

    job = BatchJob(dataset=choice["dataset"], reference=choice["reference"], writer=choice["writer"],
                   notice_settings=settings, actor=common.actor(), hold=holder(choice))
    return run_on_cluster(source, out, job, None, progress)


RUNNERS = {"here": run_here, "cluster": run_on_configured_cluster}


def cluster_address() -> str | None:
    """The cluster the page may submit to (LENDSAFE_CLUSTER), or None when none is configured."""
    from lendsafe.issue.cluster import configured_cluster

    try:
        return configured_cluster()
    except LendSafeError:
        return None


def batch_root(choice: dict[str, Any]) -> Path | None:
    """Where a batch's files are kept while it runs: on a cluster, under the runtime home (which the workers
    must see); here, the system's temporary folder."""
    if choice.get("where") != "cluster":
        return None
    root = common.app_settings().home / "batches"
    root.mkdir(parents=True, exist_ok=True)
    return root


def batch_choice() -> dict[str, str]:
    """The session's dataset, reference and writer: what a batch runs with."""
    return {"dataset": common.current_dataset(), "reference": common.current_reference(),
            "writer": common.current_writer()}


def choice_text(choice: dict[str, Any]) -> str:
    return (f"dataset {choice['dataset']} · reason reference {choice['reference']} · writer "
            f"{common.WRITER_LABELS[choice['writer']].lower()}"
            + (" · every denial held for review" if choice.get("hold_all") else "")
            + (" · on the cluster" if choice.get("where") == "cluster" else ""))


def batch() -> None:
    st.header("Batch")
    choice = batch_choice()
    spec = load_spec(choice["dataset"])
    st.write(f"Upload a CSV of {spec.title} applications: one column per field "
             f"({', '.join(f.name for f in spec.input_fields)}), optionally applicant_name, applicant_address, "
             "application_id, application_date, loan_amount, product. Invalid rows are listed with their "
             "problems while the valid ones are issued; a row with a blank required cell gets a notice of "
             "incompleteness (Reg B 1002.9(c)) naming what is missing.")
    st.info(f"This batch runs with this session's {choice_text(choice)} (change them in the sidebar).",
            icon=":material/tune:")
    st.download_button("Download a sample CSV", fields.sample_csv(spec), file_name=f"{choice['dataset']}_sample.csv",
                       mime="text/csv", on_click="ignore", key="ls_sample_csv")
    choice["hold_all"] = st.checkbox("Hold every denial for review", key="ls_batch_hold",
                                     help="no notice is issued until a reviewer approves it (Review page); without "
                                          "this, only the denials the review policy selects are held")
    address = cluster_address()
    choice["where"] = st.radio("Run on", ["here", "cluster"] if address else ["here"], horizontal=True,
                               key="ls_batch_where",
                               format_func=lambda w: "this server" if w == "here" else f"the cluster {address}",
                               help="the cluster is the one LENDSAFE_CLUSTER names; its workers must see this "
                                    "server's runtime home")
    upload = st.file_uploader(f"Applications CSV (at most {BATCH_MAX_MB} MB)", type=["csv"], key="ls_batch_upload")
    too_big = upload is not None and upload.size > BATCH_MAX_MB * 1024 * 1024
    if too_big:
        st.error(f"This file is {upload.size / 1024 / 1024:,.1f} MB; the batch page takes CSV files of at most "
                 f"{BATCH_MAX_MB} MB. Split it, or run `lendsafe notices` on the command line.")
    allowed = common.can_issue()
    if not allowed:
        st.caption("Running a batch issues notices and records them: sign in (sidebar) as an analyst to run one.")
    if st.button("Run the batch", type="primary", disabled=upload is None or too_big or not allowed, key="ls_batch_run"):
        st.session_state["ls_batch_confirm"] = True
    if st.session_state.get("ls_batch_confirm") and upload is not None and allowed:
        confirm(upload, choice)
    outcome = common.work(choice["dataset"])["batch"]
    if outcome:
        batch_outcome(outcome)


def confirm(upload: Any, choice: dict[str, str]) -> None:
    """Issue only after an explicit confirmation naming what will happen and as whom."""
    panel = st.empty()
    with panel.container(border=True):
        st.warning("Every valid row will be decided, its notice issued and recorded in the audit store as "
                   f"{printable(common.actor())}, with the {choice_text(choice)}.", icon=":material/warning:")
        plain("File: ", upload.name)
        left, right = st.columns(2)
        go = left.button("Confirm: issue the notices", type="primary", key="ls_batch_confirmed")
        if right.button("Cancel", key="ls_batch_cancel"):
            st.session_state.pop("ls_batch_confirm", None)
            st.rerun()
    if not go:
        return
    panel.empty()
    st.session_state.pop("ls_batch_confirm", None)
    try:
        common.work(choice["dataset"])["batch"] = run_uploaded_batch(upload, choice)
    except BatchRefused as exc:
        st.error("The batch could not run:")
        plain("", exc)
        return
    st.toast(f"Batch issued: {common.work(choice['dataset'])['batch']['notices']} notice(s)",
             icon=":material/verified:")


ROW_COLUMNS = {"data_row": st.column_config.NumberColumn("data row", help="1 = the first row after the CSV header",
                                                         format="%d", width="small"),
               "application_id": st.column_config.TextColumn("application id", width="medium"),
               "applicant_name": st.column_config.TextColumn("applicant", width="medium"),
               "problems": st.column_config.TextColumn("problems", width="large"),
               "id": st.column_config.TextColumn("document id", width="medium"),
               "reasons": st.column_config.TextColumn("reason codes", width="medium"),
               "path": st.column_config.TextColumn("PDF file", width="medium"),
               "check": st.column_config.TextColumn("notice check", width="small"),
               "audit_id": st.column_config.TextColumn("audit record", width="small"),
               "key": None, "sha256": None}


def batch_outcome(outcome: dict[str, Any]) -> None:
    import pandas as pd

    st.subheader("Batch outcome")
    plain("File: ", outcome["file"])
    st.caption(f"Ran with the {choice_text(outcome)}; issued as {printable(outcome.get('actor') or '')}.")
    if outcome.get("specimen"):
        st.warning("These notices are stamped **SPECIMEN** (demonstration lender settings): do not send them.")
    cols = st.columns(6)
    cols[0].metric("Decided", len(outcome["rows"]))
    cols[1].metric("Notices", outcome["notices"])
    cols[2].metric("Incomplete", outcome.get("incomplete", 0), help="notices of incompleteness (Reg B 1002.9(c))")
    cols[3].metric("Held for review", outcome.get("held", 0), help="no notice until a reviewer approves (Review page)")
    cols[4].metric("Not issued", len(outcome["errors"]), help="invalid rows and refused notices")
    cols[5].metric("Failed notice checks", outcome["failed_checks"])
    st.download_button("Download the notices (zip with manifest)", outcome["zip"],
                       file_name=f"notices_{Path(outcome['file']).stem}.zip", mime="application/zip",
                       type="primary", on_click="ignore", key="ls_batch_zip")
    if outcome["errors"]:
        listed = outcome["errors"][:ERRORS_LISTED]
        st.error(f"{len(outcome['errors'])} row(s) were not issued; "
                 + (f"the first {len(listed)} are listed below, " if len(outcome["errors"]) > len(listed) else "")
                 + "all of them are in errors.csv inside the zip.")
        st.dataframe(pd.DataFrame(listed), hide_index=True, width="stretch", column_config=ROW_COLUMNS)
    st.dataframe(pd.DataFrame(outcome["rows"]), hide_index=True, width="stretch", column_config=ROW_COLUMNS)


def render() -> None:
    st.title("Notices")
    lender_settings()
    st.divider()
    session_notices()
    st.divider()
    batch()


if __name__ == "__main__":
    render()
