"""Notices: lender settings, the adverse-action and incompleteness notice content, text cleaning, the PDF
and the check that reads a PDF's text back against what was issued.
"""
