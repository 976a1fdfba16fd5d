"""``python -m worldmodel.cli`` is ``wml``."""

import sys

from worldmodel.cli import main

sys.exit(main())
