"""HiGHS process-wide matters every caller shares (the dispatch engine, the meshed OPF, the market).

`quiet`: instances that start silent (the banner muted once). `threads`: one thread count
per process (a second count fails every later run). No solver model lives here, and the
package imports nothing heavy, so the market uses it without the dispatch package.
"""
