"""A checkpoint or an export is a file like any other: what it names is not run."""

import json
import sys

import pytest

from worldmodel.app.agents import load_agent
from worldmodel.export import export_model

pytest.importorskip("safetensors")


def test_a_plug_in_env_named_only_by_an_export_is_not_imported(tiny_block_checkpoint,
                                                              tmp_path):
    folder = export_model(tiny_block_checkpoint, tmp_path / "export")
    config = json.loads((folder / "config.json").read_text())
    config["data_meta"]["env"]["id"] = "planted_module_xyz:Env-v0"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"names the plug-in env 'planted_module_xyz:Env-v0'.*"
                                         r"Name it yourself: env.id=planted_module_xyz:Env-v0"):
        load_agent(folder, samples=8, iterations=1, elites=2, horizon=2)
    assert "planted_module_xyz" not in sys.modules
    # the user names it: then it is theirs to import (here, only when an env is made)
    trusted = load_agent(folder, samples=8, iterations=1, elites=2, horizon=2,
                         trusted_env_ids=("planted_module_xyz:Env-v0",))
    assert trusted.env_config.id == "planted_module_xyz:Env-v0"
    assert "planted_module_xyz" not in sys.modules
