"""The failover tests' real PostgreSQL: the store tests' session fixture (one server per session)."""

from tests.integration.store.conftest import pg_server

__all__ = ["pg_server"]
