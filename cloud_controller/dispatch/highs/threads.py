"""Moved to `cloud_controller.highs.threads` (shared with the market); kept for existing imports."""

from cloud_controller.highs.threads import process_threads

__all__ = ["process_threads"]
