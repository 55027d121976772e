"""`python -m dream_core ...`: see `dream_core.cli`."""

import sys

from .cli import main

sys.exit(main())
