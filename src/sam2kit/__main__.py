"""``python -m sam2kit``: the same as the ``sam2kit`` command."""

import sys

from sam2kit.cli import main

sys.exit(main())
