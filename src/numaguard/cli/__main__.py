"""``python -m numaguard.cli``: the same command line as ``python -m numaguard``."""

from numaguard.cli import run

run()
