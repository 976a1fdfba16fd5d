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


def test_export_replaces_nothing_without_force_and_never_writes_into_its_source(
        tiny_block_checkpoint, tiny_dataset, tmp_path, capsys):
    from worldmodel.app.cli import main as wml

    pixels = tiny_dataset / "shard-00000" / "pixels.npy"
    before = pixels.read_bytes()
    for forced in ([], ["--force"]):  # not even with --force
        assert wml(["export", str(tiny_dataset), str(pixels), "--no-progress", *forced]) == 2
        assert "is inside its own input" in capsys.readouterr().err
    assert pixels.read_bytes() == before
    out = tmp_path / "data.h5"
    out.write_text("a file the user keeps")
    assert wml(["export", str(tiny_dataset), str(out), "--no-progress"]) == 2
    assert "already exists; give a new path, or --force" in capsys.readouterr().err
    assert out.read_text() == "a file the user keeps"
    pytest.importorskip("h5py")
    assert wml(["export", str(tiny_dataset), str(out), "--no-progress", "--force"]) == 0
    folder = tmp_path / "export"
    assert wml(["export", str(tiny_block_checkpoint), str(folder)]) == 0
    assert wml(["export", str(tiny_block_checkpoint), str(folder)]) == 2
    assert wml(["export", str(tiny_block_checkpoint), str(folder), "--force"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export")]  # no leftovers


def test_an_export_of_mixed_or_non_finite_weights_does_not_load(tiny_block_checkpoint,
                                                               tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    from worldmodel.checkpoint import from_pretrained

    one = export_model(tiny_block_checkpoint, tmp_path / "one")
    weights = load_file(str(one / "model.safetensors"))
    name = next(iter(weights))
    weights[name] = weights[name] + 1.0  # another model's weights beside this config
    save_file(weights, str(one / "model.safetensors"))
    with pytest.raises(ValueError, match="is not the file .*config.json was written with"):
        from_pretrained(one)
    config = json.loads((one / "config.json").read_text())
    del config["weights_sha256"]  # as an export that records none
    (one / "config.json").write_text(json.dumps(config))
    weights[name] = torch.full_like(weights[name], float("nan"))
    save_file(weights, str(one / "model.safetensors"))
    with pytest.raises(ValueError, match=f"non-finite weights .* first {name}"):
        from_pretrained(one)
