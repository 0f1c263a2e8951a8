"""``python -m ultra_ext.bench``: the same command as ``ultra-ext bench``."""

import sys

from .runner import main

sys.exit(main())
