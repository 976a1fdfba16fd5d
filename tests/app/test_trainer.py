"""The resume check: what a checkpoint was trained with, compared field by field."""

from dataclasses import asdict

from worldmodel.app.trainer import completed_settings
from worldmodel.module import LossConfig, OptimConfig
from worldmodel.world_model import ModelConfig


def test_fields_added_since_a_checkpoint_are_no_change_but_real_changes_are():
    now = {"model": asdict(ModelConfig()), "loss": asdict(LossConfig()),
           "optim": asdict(OptimConfig()), "max_steps": 10}
    old_model = {k: v for k, v in now["model"].items() if not k.startswith("vit_")}
    saved = completed_settings({**now, "model": old_model})  # written before vit_* existed
    assert saved == now
    other = completed_settings({**now, "model": {**old_model, "latent_dim": 7}})
    assert other["model"]["latent_dim"] == 7 and other["model"] != now["model"]
    broken = completed_settings({**now, "model": {"no_such_field": 1}})
    assert broken["model"] == {"no_such_field": 1}  # left as saved, so the check names it
