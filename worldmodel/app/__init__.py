"""The application layer: everything that composes the packages below it into a program.

- ``worldmodel.app.cli``: the ``wml`` command and its subcommands' dispatch.
- ``worldmodel.app.train`` and ``worldmodel.app.plan``: the composition roots of
  ``python train.py`` and ``python plan.py`` (``wml train``, ``wml plan``).
- ``worldmodel.app.agents``: ``load_agent``, a checkpoint's model wired into an ``MPCAgent``.
- ``worldmodel.app.trainer``: the Lightning Trainer factory and the resume checks.
- ``worldmodel.app.collect`` and ``worldmodel.app.data``: the data commands (collect, inspect,
  verify, export, import).

Nothing below this layer imports it (``tests/test_layers.py``); the facade
``worldmodel/__init__.py`` re-exports its public functions.
"""
