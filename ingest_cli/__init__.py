"""``personalize-ingest``: operators' and producers' command line (validate, replay, redrive, backfill, status).

Every command reads, validates, batches and sends records with the functions' own code (:mod:`ingest_cli.runtime`).
"""
