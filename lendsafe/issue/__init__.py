"""Issuing: ``Issuer.issue`` (the one way a notice and its audit record are made; ``render_notice`` renders
and checks without recording), batches of notices (``batch``) read from CSV or Parquet (``inputs``), the
folder a batch writes (``batchfolder``) and the same batches on a Dask cluster (``cluster``).
"""
