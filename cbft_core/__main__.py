"""``python -m cbft_core``: see :mod:`cbft_core.cli`."""
import sys

from .cli import main

sys.exit(main())
