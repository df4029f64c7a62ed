"""``python -m numaguard``: the same command line as the ``numaguard`` script."""

import sys

from numaguard.cli import main

sys.exit(main())
