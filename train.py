"""Train a model from a config: ``python train.py [--config NAME|PATH] [key=value ...]``.

The same as ``wml train``; the code lives in ``worldmodel.app.train``.
"""

import sys

from worldmodel.app.train import main

if __name__ == "__main__":
    sys.exit(main())
