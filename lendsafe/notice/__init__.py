"""Notices: what a lender sends an applicant and the check that reads it back.

The package owns, in data-flow order: the lender's settings and the Reg B Appendix A agency table
(``settings``, read through ``reading``), the wording template (``wording``), the dates a notice prints
(``dates``), the adverse-action notice's content built from a ``Decision`` (``model``), text cleaning, fonts
and right-to-left lines (``text``), the deterministic PDF (``pdf``), the PDF's text read back (``pdftext``)
and the completeness check against the notice as issued (``context``, ``check``); notices of
incompleteness (``incomplete``) reuse all of them. Until the lender's own settings replace the
demonstration values, every page is stamped SPECIMEN. reportlab is imported inside the functions that draw.

Its public API: ``NoticeSettings``, ``Notice``, ``build_notice``, ``render_pdf`` and ``check_pdf``.
"""
from lendsafe.notice.check import check_pdf
from lendsafe.notice.model import Notice, build_notice
from lendsafe.notice.pdf import render_pdf
from lendsafe.notice.settings import NoticeSettings

__all__ = ["Notice", "NoticeSettings", "build_notice", "check_pdf", "render_pdf"]
