"""``wml inspect``, ``wml verify``, ``wml export`` and ``wml import``: datasets and models in and
out of this framework.

- ``wml inspect DATASET [--out DIR] [--verify]``: counts, state ranges, action statistics;
  with ``--out`` a contact sheet PNG and a GIF of a few episodes.
- ``wml verify DATASET``: every shard's CRC32s (exit 1 naming the first file that fails).
- ``wml export DATASET OUT.h5`` (``--format hdf5``, the stable-worldmodel / LeWM layout:
  ``envs.interop``) or ``wml export CHECKPOINT OUT_DIR`` (``--format safetensors``:
  ``model.safetensors`` + ``config.json``, loadable without Lightning, ``worldmodel.export``).
  The format defaults from the input: a dataset folder goes to HDF5, a checkpoint to
  safetensors.
- ``wml import FILE.h5 OUT_DIR [--env-id ID ...]``: an HDF5 file of that layout into this
  dataset format, to train on.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["export_main", "import_main", "inspect_main", "verify_main"]

FORMATS = ("hdf5", "safetensors")


def _fail(err: Exception) -> int:
    print(f"error: {err}", file=sys.stderr)
    return 2


def _guarded(work: Callable[[], Path], interrupted: str) -> Path | int:
    """``work()``'s result, or the exit code of its failure: 2 and one line for an error a user
    can meet, 130 and ``interrupted`` for Ctrl-C."""
    try:
        return work()
    except _errors() as err:
        return _fail(err)
    except KeyboardInterrupt:
        print(f"\ninterrupted: {interrupted}", file=sys.stderr)
        return 130


def _errors() -> tuple[type[Exception], ...]:
    from envs.dataset import DatasetError

    return (DatasetError, ValueError, FileNotFoundError, ImportError, OSError)


def inspect_main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Summarise a dataset folder.")
    parser.add_argument("dataset", help="a dataset folder (meta.json + shard-*/)")
    parser.add_argument("--out", default=None,
                        help="write contact_sheet.png and episodes.gif into this folder")
    parser.add_argument("--episodes", type=int, default=4, help="episodes in the pictures")
    parser.add_argument("--verify", action="store_true", help="also check every CRC32")
    args = parser.parse_args(argv)
    from envs.inspection import inspect_dataset

    try:
        report = inspect_dataset(args.dataset, args.out, episodes=args.episodes,
                                 verify=args.verify)
    except _errors() as err:
        return _fail(err)
    print(report.text())
    return 1 if args.verify and getattr(report, "verify_error", None) else 0


def verify_main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Check every CRC32 of a dataset.")
    parser.add_argument("dataset", help="a dataset folder (meta.json + shard-*/)")
    args = parser.parse_args(argv)
    from envs.dataset import DatasetError, PixelDataset

    try:
        dataset = PixelDataset(args.dataset, allow_incomplete=True)
    except _errors() as err:
        return _fail(err)
    missing = dataset.meta.num_shards - len(dataset.shards)
    try:
        dataset.verify()
    except DatasetError as err:
        print(f"FAILED: {err}", file=sys.stderr)
        return 1
    if missing:
        print(f"INCOMPLETE: {args.dataset} has {len(dataset.shards)} of "
              f"{dataset.meta.num_shards} shards ({missing} missing); the present ones match "
              "their checksums. Rerun the collect command to finish it", file=sys.stderr)
        return 1
    print(f"{args.dataset}: all {len(dataset.shards)} shards ({dataset.num_frames} frames) "
          "match their checksums")
    return 0


def _default_format(source: Path) -> str:
    return "hdf5" if (source / "meta.json").is_file() else "safetensors"


def export_main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="Export a dataset (to HDF5) or a checkpoint (to safetensors).")
    parser.add_argument("source", help="a dataset folder, or a model.ckpt")
    parser.add_argument("out", help="OUT.h5 for a dataset, a folder for a model")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="default: hdf5 for a dataset folder, safetensors for a checkpoint")
    parser.add_argument("--force", action="store_true",
                        help="replace OUT if it exists (never inside SOURCE)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    source = Path(args.source)
    fmt = args.format or _default_format(source)

    def work() -> Path:
        if fmt == "hdf5":
            from envs.hdf5_export import export_hdf5

            return export_hdf5(source, args.out, progress=not args.no_progress,
                               force=args.force)
        from worldmodel.export import export_model

        return export_model(source, args.out, force=args.force)

    path = _guarded(work, f"{args.out} was not written (its temporary file is removed); "
                          "rerun the same command")
    if isinstance(path, int):
        return path
    print(f"wrote {path}")
    return 0


def import_main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="Import an HDF5 dataset (stable-worldmodel / LeWM layout).")
    parser.add_argument("source", help="the .h5 file")
    parser.add_argument("out", help="the dataset folder to write")
    parser.add_argument("--env-id", default=None,
                        help="the env the frames come from, when the file does not record it "
                             "(a wm/ id, Gymnasium id or module:Env-v0)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="with --env-id: the frames' side (default: read from the file)")
    parser.add_argument("--episodes-per-shard", type=int, default=None,
                        help="default: the exported dataset's own, else 50")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    env = None
    if args.env_id:
        env = {"id": args.env_id}
        if args.image_size:
            env["image_size"] = args.image_size
    from envs.interop import import_hdf5

    path = _guarded(lambda: import_hdf5(args.source, args.out, env=env,
                                        episodes_per_shard=args.episodes_per_shard,
                                        progress=not args.no_progress),
                    f"complete shards are kept in {args.out}; rerun the same command to resume")
    if isinstance(path, int):
        return path
    print(f"wrote {path}; train on it with: wml train data.path={path}")
    return 0
