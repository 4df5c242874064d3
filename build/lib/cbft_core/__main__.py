"""``python -m cbft_core``: see :mod:`cbft_core.presentation.cli`."""
import sys

from .presentation.cli import main

sys.exit(main())
