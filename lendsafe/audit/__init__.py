"""The audit store: canonical bytes, the signed hash chain, the SQL store, the external checkpoint and the
replay of what an applicant received (the one place above the store that renders a notice).
"""
