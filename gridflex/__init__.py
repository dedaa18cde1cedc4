"""GridFlex command line and operations glue (CLI, embedded broker, demo orchestration).

The domain packages are `protocols`, `edge_agent`, `cloud_controller` and `simulators`;
this package only wires them into the `gridflex` console script.
"""
