"""Telemetry, events and acks storage: embedded SQLite by default, InfluxDB in production."""

from cloud_controller.store.sqlite import SqliteStore, WriteResult

__all__ = ["SqliteStore", "WriteResult"]
