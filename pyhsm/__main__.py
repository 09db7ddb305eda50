"""``python -m pyhsm``: the ``pyhsm`` command."""

import sys

from pyhsm.cli import main

sys.exit(main())
