"""Forecasts: per-site baselines from history (congestion is forecast by the planner over them)."""
