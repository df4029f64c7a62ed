"""``python -m numaguard``: the same command line as the ``numaguard`` script."""

from numaguard.cli import run

run()
