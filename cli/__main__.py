"""``python -m cli``: the ``ledger`` command (as the console script runs it)."""

import sys

from cli.entry import main

sys.exit(main())
