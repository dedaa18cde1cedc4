"""GridFlex's composition root: the one place that wires the domain packages together.

The domain packages are `protocols`, `edge_agent`, `cloud_controller` and `simulators`;
this package holds, by role, the `gridflex` console script (`cli`), the closed loop and
its twin (`loop`), operations glue (`ops`: broker, deploy config, signal runner) and the
benchmarks (`bench`).
"""
