"""Moved to `cloud_controller.highs.quiet` (shared with the market); kept for existing imports."""

from cloud_controller.highs.quiet import quiet_highs

__all__ = ["quiet_highs"]
