"""Telemetry, events and acks storage: embedded SQLite by default, PostgreSQL shared, InfluxDB copies.

`Store` is the interface both SQLite and PostgreSQL satisfy; `PostgresStore` lives in
`cloud_controller.store.postgres` and is imported only where `store.kind: postgres` asks
for it (psycopg is not loaded otherwise).
"""

from cloud_controller.store.base import STORE_ERRORS, LeaseState, Store, StoreError
from cloud_controller.store.sqlite import SqliteStore, WriteResult

__all__ = ["STORE_ERRORS", "LeaseState", "SqliteStore", "Store", "StoreError", "WriteResult"]
