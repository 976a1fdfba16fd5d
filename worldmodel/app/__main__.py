"""``python -m worldmodel.app`` is ``wml``."""

import sys

from worldmodel.app.cli import main

sys.exit(main())
