"""Issuing: ``Issuer`` (the one way a notice and its audit record are made) and batches of notices.
"""
