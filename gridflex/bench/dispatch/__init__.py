"""The dispatch benchmark (`gridflex bench dispatch`): figures printed, never a pass/fail timing test.

Three parts (`PARTS`), each answered on the machine it runs on:

- "rundcopp": is the engine faster than pandapower's DC OPF on the same problem, and does it
  reach the same optimum? `steps` consecutive steps of the 319-household Schutterwald region
  (controllable sgens and loads with pwl costs, a binding MV/LV station limit, bidirectional
  loads standing in for batteries). The engine is built once and re-solved warm;
  `pp.rundcopp` solves from scratch.
- "step": how does a single dispatch step scale with the number of controllable buildings?
  The Schutterwald radial grid is replicated under one root bus (`fleet.replicate_radial`) so
  the feeder grows with the site count, as a real rollout would; each size on the full LV
  network and on the station-level network the live planner uses, whole, lazily, site by
  site and by area.
- "mpc": is a 96 x 15 min MPC affordable once per planning cycle? As one LP and by area, on
  both networks, free and with the HV/MV threshold binding.

Sizes and MPC cases run in a spawned child process with a wall-clock limit so one that takes
far too long is recorded as "skipped (reason)" instead of hanging the bench; whatever the
child measured before the limit is still reported.
"""

from gridflex.bench.dispatch.report import format_result
from gridflex.bench.dispatch.results import DispatchBenchResult, MpcResult, RundcoppComparison, SizeResult
from gridflex.bench.dispatch.run import PARTS, run_dispatch_bench

__all__ = [
    "PARTS",
    "DispatchBenchResult",
    "MpcResult",
    "RundcoppComparison",
    "SizeResult",
    "format_result",
    "run_dispatch_bench",
]
