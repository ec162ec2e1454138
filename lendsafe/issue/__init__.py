"""Issuing: ``Issuer.issue`` (the one way a notice and its audit record are made; ``render_notice`` renders
and checks without recording), batches of notices (``batch``) and the folder a batch writes (``batchfolder``).
"""
