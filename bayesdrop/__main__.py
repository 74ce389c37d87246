"""``python -m bayesdrop``: the command line (see :mod:`bayesdrop.cli`)."""

import sys

from bayesdrop.cli import main

if __name__ == "__main__":
    sys.exit(main())
