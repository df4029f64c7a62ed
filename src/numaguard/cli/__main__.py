"""``python -m numaguard.cli``: the same command line as ``python -m numaguard``."""

from numaguard.cli import run

if __name__ == "__main__":    # a spawned or forkserver worker imports it too
    run()
