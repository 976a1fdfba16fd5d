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
    assert cfg.mode == "synthetic"
    assert cfg.world.mixing == "spiral" and cfg.loss.regulariser.name == "sigreg"
    assert cfg.model.encoder == "mlp" and cfg.model.encoder_width == 256


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_yaml_is_valid(path):
    load_config(str(path))


def test_overrides_are_applied_and_typed():
    cfg = load_config("identifiability", ["trainer.max_steps=12", "loss.regulariser_weight=0.25",
                             "world.rho_per_dim=[0.99,0.8]", "world.mixing=banana"])
    assert cfg.trainer.max_steps == 12 and cfg.loss.regulariser_weight == 0.25
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
    path.write_text("mode: synthetic\nworld:\n  mixing: ???\n")
    with pytest.raises(ConfigError, match="world.mixing"):
        load_config(str(path))
    assert load_config(str(path), ["world.mixing=banana"]).world.mixing == "banana"


@pytest.mark.parametrize(("config", "key"), [("identifiability", "env.image_size=32"),
                                             ("identifiability", "data.history=2"),
                                             ("identifiability", "plan.eval.episodes=3"),
                                             ("reacher", "world.mixing=banana")])
def test_a_key_of_the_other_mode_fails_at_load_time_with_the_key_named(config, key):
    with pytest.raises(ConfigError, match=rf"\['{key.split('=')[0]}'\] only apply to mode="):
        load_config(config, [key])


def test_a_yaml_section_of_the_other_mode_is_named(tmp_path):
    path = tmp_path / "mixed.yaml"
    path.write_text("mode: synthetic\nenv:\n  image_size: 32\n")
    with pytest.raises(ConfigError, match=r"env.image_size.*mode=pixels"):
        load_config(str(path))


def test_an_unknown_mode_is_named():
    with pytest.raises(ConfigError, match="'mode'.*'video'"):
        load_config("reacher", ["mode=video"])


@pytest.mark.parametrize("override", ["trainer.batch_size=0", "optim.lr=-1",
                                      "loss.regulariser_weight=-0.1", "model.projector=layernorm"])
def test_bad_values_are_refused_at_load_time(override):
    with pytest.raises(ConfigError, match=override.split("=")[0].split(".")[-1]):
        load_config("reacher", [override])


def test_synthetic_probe_settings_are_refused_in_pixel_mode_not_ignored():
    with pytest.raises(ConfigError, match="probe.num_samples=500: these probe settings are for "
                                          "synthetic worlds"):
        load_config("reacher", ["probe.num_samples=500"])
    assert load_config("identifiability", ["probe.num_samples=500"]).probe.num_samples == 500
    assert load_config("reacher", ["probe.every_n_steps=50"]).probe.every_n_steps == 50


def test_resolvers_are_refused_so_a_shared_yaml_cannot_read_the_environment(tmp_path,
                                                                              monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    shared = tmp_path / "shared.yaml"
    shared.write_text("name: ${oc.env:SECRET_TOKEN}\n")
    with pytest.raises(ConfigError, match=r"at key 'name'.*calls the resolver 'oc.env'"):
        load_config(str(shared))
    with pytest.raises(ConfigError, match=r"command line\) at key 'trainer.logger'"):
        load_config("reacher", ["trainer.logger=${oc.env:SECRET_TOKEN}"])
    # a reference to another key is still a reference
    shared.write_text("model:\n  feature_dim: 48\n  projector_dim: ${model.feature_dim}\n")
    assert load_config(str(shared)).model.projector_dim == 48


@pytest.mark.parametrize("name", ["../../x", "/abs/run", "a/b", "..", "."])
def test_a_run_name_is_one_folder_name(name):
    with pytest.raises(ConfigError, match="must be one folder name"):
        load_config("reacher", [f"name={name}"])
