"""`python -m gridflex` runs the console script."""

from gridflex.cli import app

app()
