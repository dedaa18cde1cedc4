"""Live control: the per-period planner (MPC over forecasts) and its data types."""
