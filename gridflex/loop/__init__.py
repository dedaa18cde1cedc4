"""The closed loop and its offline twin: scenario, reference run, grid truth, agents, report.

`closed_loop` runs everything on real sockets; `twin` runs the same physics and planner
without them. Both start from one `scenario.LoopScenario`, so their numbers compare.
"""
