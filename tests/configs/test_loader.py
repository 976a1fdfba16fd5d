"""Config loading: schema + YAML + overrides, and errors that name the key."""

import pytest

from configs.loader import CONFIG_DIR, ConfigError, load_config
from configs.schema import ExperimentConfig


def test_default_config_is_the_reacher_main_job():
    cfg = load_config()
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.name == "reacher" and cfg.env.id == "wm/reacher-v0" and cfg.env.image_size == 64
    assert cfg.plan.planner.name == "cem" and cfg.plan.planner.samples == 300


def test_identifiability_config_loads_onto_the_schema():
    cfg = load_config("identifiability")
    assert cfg.env is None
    assert cfg.world.mixing == "spiral" and cfg.objective.name == "sigreg"
    assert cfg.model.encoder.hidden_dim == 256


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_yaml_is_valid(path):
    load_config(str(path))


def test_overrides_are_applied_and_typed():
    cfg = load_config("identifiability", ["trainer.max_steps=12", "objective.lam=0.25",
                             "world.rho_per_dim=[0.99,0.8]", "world.mixing=banana"])
    assert cfg.trainer.max_steps == 12 and cfg.objective.lam == 0.25
    assert cfg.world.rho_per_dim == [0.99, 0.8] and cfg.world.mixing == "banana"


def test_loading_does_not_share_state_between_calls():
    a = load_config("identifiability", ["trainer.max_steps=5"])
    b = load_config("identifiability")
    assert a.trainer.max_steps == 5 and b.trainer.max_steps != 5


def test_unknown_override_key_is_named():
    with pytest.raises(ConfigError, match="trainer.max_stepz"):
        load_config("identifiability", ["trainer.max_stepz=3"])


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match="trainer.max_steps"):
        load_config("identifiability", ["trainer.max_steps=many"])


def test_malformed_override_is_rejected():
    with pytest.raises(ConfigError, match="key=value"):
        load_config("identifiability", ["trainer.max_steps"])


def test_unknown_key_in_yaml_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("world:\n  mixingg: spiral\n")
    with pytest.raises(ConfigError, match="world.mixingg"):
        load_config(str(path))


def test_missing_value_is_named(tmp_path):
    path = tmp_path / "missing.yaml"
    path.write_text("name: ???\n")
    with pytest.raises(ConfigError, match="name"):
        load_config(str(path))


def test_unknown_config_name_lists_the_known_ones():
    with pytest.raises(ConfigError, match="identifiability"):
        load_config("no_such_config")


def test_missing_value_can_be_filled_from_the_command_line(tmp_path):
    path = tmp_path / "template.yaml"
    path.write_text("world:\n  mixing: ???\n")
    with pytest.raises(ConfigError, match="world.mixing"):
        load_config(str(path))
    assert load_config(str(path), ["world.mixing=banana"]).world.mixing == "banana"
