"""Seed 001's year-long congestion study: scenarios, control policies, rolling-horizon OPF, AC check."""
