"""The ground layer: helpers every other package uses and none owns.

- ``common.fileio``: atomic writes, checksums, write checks, folder locks, the launch rank.
- ``common.checks``: range checks of config values that name the key.
- ``common.registry``: named registries of components that refuse duplicates and name the
  choices when a name is unknown.

It imports no other package of this project (``tests/test_layers.py``).
"""
