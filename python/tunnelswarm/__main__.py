"""``python -m tunnelswarm``."""

import sys

from tunnelswarm.cli import main

sys.exit(main())
