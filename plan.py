"""Evaluate a world model by planning: ``python plan.py [--config NAME|PATH] [key=value ...]``.

The same as ``wml plan``; the code lives in ``worldmodel.app.plan``.
"""

import sys

from worldmodel.app.plan import main

if __name__ == "__main__":
    sys.exit(main())
