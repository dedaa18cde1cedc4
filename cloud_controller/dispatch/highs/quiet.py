"""`quiet_highs` lives in `cloud_controller.highs_quiet` (the market uses it without this package)."""

from cloud_controller.highs_quiet import quiet_highs

__all__ = ["quiet_highs"]
