"""A trained world model exported as model.safetensors + config.json, reloaded without Lightning."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from worldmodel.app.agents import load_agent
from worldmodel.app.cli import main as wml
from worldmodel.checkpoint import from_pretrained, load_world_model
from worldmodel.export import export_model


@pytest.fixture
def checkpoint(tiny_block_checkpoint):
    return tiny_block_checkpoint


def _frames(seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (3, 4, 32, 32, 3), dtype=np.uint8))


def test_exported_and_original_give_identical_latents_and_rollouts(checkpoint, tmp_path):
    folder = export_model(checkpoint, tmp_path / "export")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    original, meta = load_world_model(checkpoint)
    exported, meta2 = from_pretrained(folder)
    assert meta2 == meta and not exported.training
    obs = _frames()
    with torch.no_grad():
        z0, z1 = original.encode(obs), exported.encode(obs)
        actions = torch.zeros(3, 2 + 4, original.action_dim)
        r0, r1 = original.rollout(z0[:, :3], actions), exported.rollout(z1[:, :3], actions)
    torch.testing.assert_close(z1, z0, rtol=0, atol=0)
    torch.testing.assert_close(r1, r0, rtol=0, atol=0)
    config = json.loads((folder / "config.json").read_text())
    assert config["action_dim"] == 2 * meta.action_dim and config["history"] == meta.history
    assert len(config["source"]["sha256"]) == 64 and "torch" in config["versions"]


def test_an_export_loads_without_lightning(checkpoint, tmp_path):
    folder = export_model(checkpoint, tmp_path / "export")
    script = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('lightning', 'pytorch_lightning', 'torchmetrics'):
            raise ImportError('blocked ' + name)
sys.meta_path.insert(0, Block())
import torch
from worldmodel.checkpoint import from_pretrained
model, meta = from_pretrained({str(folder)!r})
z = model.encode(torch.zeros(1, 1, 32, 32, 3, dtype=torch.uint8))
assert 'lightning' not in sys.modules
print(tuple(z.shape), meta.env.id)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "(1, 1, 8) wm/reacher-v0"


def test_wml_export_writes_a_folder_that_plans_like_the_checkpoint(checkpoint, tmp_path, capsys):
    out = tmp_path / "exported"
    assert wml(["export", str(checkpoint), str(out)]) == 0  # a checkpoint: safetensors
    assert f"wrote {out}" in capsys.readouterr().out
    small = {"samples": 16, "iterations": 2, "elites": 4, "horizon": 3}
    actions = []
    for source in (checkpoint, out):
        loaded = load_agent(source, precision="fp32", **small)
        env = loaded.make_env()
        frame, _ = env.reset(seed=0)
        env.close()
        loaded.agent.reset(frame[None], frame[None], seed=5)
        actions.append(loaded.agent.act(frame[None]))
        assert loaded.planner == "cem" and loaded.agent.objective == "sum"  # the run's plan config
    np.testing.assert_array_equal(actions[0], actions[1])


def test_from_pretrained_refuses_a_folder_without_an_export(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no exported model.*wml export"):
        from_pretrained(tmp_path)
