"""The ``wml`` command: ``wml SUBCOMMAND [args]``; ``wml SUBCOMMAND --help`` for each.

The entry points sit at the top of the import chain (DESIGN.md section 1), beside the
repository's ``train.py`` and ``plan.py``, which call the same ``main`` functions; nothing in
the packages imports them. Each subcommand module is imported only when it runs, so
``wml --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["COMMANDS", "config_parser", "main"]

# name -> (module, function, one-line help)
COMMANDS = {
    "train": ("worldmodel.app.train", "main", "train a world model (or a lab encoder) from a config"),
    "plan": ("worldmodel.app.plan", "main", "closed-loop planning evaluation of a checkpoint"),
    "collect": ("worldmodel.app.collect", "main", "collect a pixel dataset (sharded, resumable)"),
    "inspect": ("worldmodel.app.data", "inspect_main",
                "summarise a dataset: counts, state and action statistics, contact sheet, GIF"),
    "verify": ("worldmodel.app.data", "verify_main", "check every CRC32 of a dataset"),
    "export": ("worldmodel.app.data", "export_main",
               "a dataset to HDF5, or a checkpoint to model.safetensors + config.json"),
    "import": ("worldmodel.app.data", "import_main", "an HDF5 dataset into this format"),
}


def config_parser(prog: str | None, description: str) -> argparse.ArgumentParser:
    """The options ``wml train`` and ``wml plan`` share: ``--config`` and ``--print-config``
    (their ``key=value`` overrides come last, after each command's own options)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", default=None, help="name in configs/ or a YAML path")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config (every key, defaults included) and exit")
    return parser


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: wml SUBCOMMAND [args]   (wml SUBCOMMAND --help for its options)", "",
             "LeJEPA world models that plan: collect, train, plan, inspect and move data.", "",
             "subcommands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "examples:", "  wml train --config reacher trainer.max_steps=2000",
              "  wml train --print-config          # every key, with its value",
              "  wml plan --config reacher plan.planner.name=mppi",
              "  wml inspect outputs/datasets/<folder> --out inspect/"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the subcommand's ``main(argv, prog)``; its return value is the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown subcommand {name!r}; choose one of {list(COMMANDS)} "
              "(wml --help)", file=sys.stderr)
        return 2
    module, function, _ = COMMANDS[name]
    return getattr(importlib.import_module(module), function)(rest, prog=f"wml {name}")


if __name__ == "__main__":
    sys.exit(main())
