"""Deciding: the application boundary (validated once), dataset specs, the reason catalog, the risk model,
exact TreeSHAP reasons and the ``Scorer`` that turns an application into a ``Decision``.

The bottom of the data flow: nothing here imports retrieval, language models, notices or the audit store.
"""
