"""``python -m numaguard``: the same command line as the ``numaguard`` script."""

from numaguard.cli import run

if __name__ == "__main__":    # a spawned or forkserver worker imports it too
    run()
