"""Meshed networks and several feeding points: a DC network model and its DC-OPF in HiGHS (docs/grid.md)."""
