"""The LP held in HiGHS: one session per engine, warm bases, lazy grid rows, reading answers back."""
