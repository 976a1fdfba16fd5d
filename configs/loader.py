"""Load a YAML config onto the dataclass schema, apply ``key=value`` overrides, validate."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from configs.schema import MODE_SECTIONS, MODES, ExperimentConfig

__all__ = ["CONFIG_DIR", "HOME_VARIABLE", "ConfigError", "load_config", "output_home",
           "print_config", "resolve_config_path"]

CONFIG_DIR = Path(__file__).resolve().parent
DEFAULT_CONFIG = "reacher"  # the main job: pixel world model, then planning
HOME_VARIABLE = "WML_HOME"


def output_home() -> Path:
    """The folder a relative ``output_dir`` is taken from: ``$WML_HOME`` when set, else this
    project's folder (the one holding ``pyproject.toml``, ``train.py`` and ``configs/``) when
    run from a source checkout, else the current folder (an installed package).

    So ``python train.py`` and ``python plan.py`` find the same ``outputs/`` from any folder.
    """
    if os.environ.get(HOME_VARIABLE):
        return Path(os.environ[HOME_VARIABLE]).expanduser().resolve()
    project = CONFIG_DIR.parent
    return project if (project / "pyproject.toml").is_file() else Path.cwd()


class ConfigError(ValueError):
    """A config file or override that does not fit the schema."""


def resolve_config_path(name_or_path: str | None) -> Path:
    """A path to an existing YAML file, or the name of one in ``configs/`` (no suffix)."""
    name = name_or_path or DEFAULT_CONFIG
    path = Path(name)
    if path.suffix not in (".yaml", ".yml"):
        path = CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise ConfigError(f"config {name!r} not found (looked for {path}); "
                          f"give a YAML path or one of {known}")
    return path


def _explain(err: OmegaConfBaseException, source: str) -> ConfigError:
    key = getattr(err, "full_key", None) or getattr(err, "key", None)
    msg = getattr(err, "msg", None) or str(err).splitlines()[0]
    where = f" at key '{key}'" if key else ""
    return ConfigError(f"invalid config ({source}){where}: {msg}")


def _leaf_keys(cfg, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for key in cfg:
        full = f"{prefix}{key}"
        node = cfg._get_node(key)
        if OmegaConf.is_dict(node):
            keys |= _leaf_keys(node, f"{full}.")
        else:
            keys.add(full)
    return keys


RESOLVER = re.compile(r"\$\{\s*([\w.]+)\s*:")  # ${oc.env:HOME}, ${oc.decode:...}


def _refuse_resolvers(node: Any, source: str, prefix: str = "") -> None:
    """Refuse resolver calls in config values: a shared YAML must not read environment
    variables (``${oc.env:...}``) or run other resolvers into configs, checkpoints and reports.
    References to other keys (``${model.latent_dim}``) stay allowed."""
    if isinstance(node, dict):
        for key, value in node.items():
            _refuse_resolvers(value, source, f"{prefix}{key}.")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _refuse_resolvers(value, source, f"{prefix}{i}.")
    elif isinstance(node, str) and (found := RESOLVER.search(node)):
        raise ConfigError(f"invalid config ({source}) at key '{prefix[:-1]}': {node!r} calls the "
                          f"resolver {found.group(1)!r}; configs may only refer to other keys "
                          "(${section.key}): write the value itself")


def _check_mode(mode: str, given: set[str], source: str) -> None:
    """Refuse keys of the sections the other mode reads (they would be silently ignored)."""
    if mode not in MODES:
        raise ConfigError(f"invalid config ({source}) at key 'mode': {mode!r} is not one of "
                          f"{list(MODES)}")
    foreign = sorted(k for k in given for other, sections in MODE_SECTIONS.items()
                     if other != mode and k.split(".")[0] in sections)
    if foreign:
        other = next(m for m in MODES if m != mode)
        raise ConfigError(f"invalid config ({source}): {foreign} only apply to mode={other}, "
                          f"but this config has mode={mode}; remove them or set mode={other}")


def load_config(name_or_path: str | None = None, overrides: list[str] | tuple[str, ...] = ()
                ) -> ExperimentConfig:
    """Schema <- YAML <- overrides, returned as a read-only-by-convention dataclass tree.

    Raises:
        ConfigError: naming the offending key for unknown keys, wrong types, missing values
            or malformed overrides.
    """
    schema = OmegaConf.structured(ExperimentConfig)
    path = resolve_config_path(name_or_path)
    try:
        from_file = OmegaConf.load(path)
        _refuse_resolvers(OmegaConf.to_container(from_file, resolve=False), str(path))
        merged = OmegaConf.merge(schema, from_file)
    except OmegaConfBaseException as err:
        raise _explain(err, str(path)) from None
    bad = [o for o in overrides if "=" not in o or o.startswith("=")]
    if bad:
        raise ConfigError(f"overrides must look like key=value, got {bad}")
    try:
        from_cli = OmegaConf.from_dotlist(list(overrides))
        _refuse_resolvers(OmegaConf.to_container(from_cli, resolve=False), "command line")
        merged = OmegaConf.merge(merged, from_cli)
    except OmegaConfBaseException as err:
        raise _explain(err, "command line") from None
    # merging '???' keeps the schema default, so values the YAML marks as required are
    # collected from the file itself; an override may fill them in.
    missing_in_file = OmegaConf.missing_keys(from_file) - _leaf_keys(from_cli)
    missing = sorted(missing_in_file | OmegaConf.missing_keys(merged))
    if missing:
        raise ConfigError(f"missing values for {missing}; set them in the YAML or as key=value")
    _check_mode(merged.mode, _leaf_keys(from_file) | _leaf_keys(from_cli), str(path))
    try:
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise _explain(err, "resolution") from None
    except ValueError as err:  # a component config's own validation (__post_init__)
        raise ConfigError(f"invalid config ({_blame(str(err), overrides, path)}): {err}"
                          ) from None
    cfg.output_dir = str(output_home() / Path(cfg.output_dir).expanduser())  # absolute stays
    return cfg


def _blame(message: str, overrides: list[str] | tuple[str, ...], path: Path) -> str:
    """Where the values a validation error names came from: the command line for the keys
    it names that were given there, else the YAML file."""
    given = [o for o in overrides if o.split("=", 1)[0] in message
             or o.split("=", 1)[0].rsplit(".", 1)[-1] in message]
    return f"command line: {' '.join(given)}" if given else str(path)


def print_config(cfg: ExperimentConfig) -> None:
    """Every key of a resolved config, defaults included, as YAML (``--print-config``)."""
    print(OmegaConf.to_yaml(OmegaConf.structured(cfg)), end="")
