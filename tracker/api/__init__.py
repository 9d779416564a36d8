"""The REST API over the tracker's database (`python cli.py serve`): FastAPI on a psycopg pool.

Every request runs in one transaction as role tracker_api with the token's user set for that
transaction only, so row-level security (V008) limits it to that user's rows.
"""
