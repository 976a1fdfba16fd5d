"""docs/plugin_env.md stays true: its module and config run, from a config alone."""

import re
from pathlib import Path

import numpy as np
from gymnasium.utils.env_checker import check_env

from configs.loader import load_config
from envs import make_pixel_env
from envs.dataset import PixelDataset
from worldmodel.app import train

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugin_env.md"


def _blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_worked_example_collects_and_trains_from_its_config(tmp_path, monkeypatch):
    (module,) = _blocks("python")
    (config,) = _blocks("yaml")
    (model,) = _blocks("xml")
    (tmp_path / "slider.xml").write_text(model)
    (tmp_path / "my_robots.py").write_text(module)
    (tmp_path / "slider.yaml").write_text(config)
    monkeypatch.syspath_prepend(str(tmp_path))

    env = make_pixel_env("my_robots:Slider-v0", image_size=32)
    assert env.state_names == ["slide_pos", "slide_vel"]
    obs, info = env.reset(seed=0)
    for _ in range(10):
        obs2, _, _, _, info2 = env.step(np.ones(1, np.float32))
    assert info2["state"][0] > info["state"][0] + 0.05  # pushed along +x
    assert obs.shape == (32, 32, 3) and not np.array_equal(obs, obs2)
    check_env(env, skip_render_check=False)

    cfg = load_config(str(tmp_path / "slider.yaml"), [
        f"output_dir={tmp_path / 'out'}", "env.image_size=32", "collect.episodes=3",
        "collect.episode_steps=12", "collect.workers=1", "trainer.max_steps=2",
        "trainer.batch_size=8", "trainer.progress_bar=false", "data.val_fraction=0.34"])
    result = train.train(cfg)
    data = PixelDataset(result.metrics["dataset"])
    assert data.meta.env.id == "my_robots:Slider-v0"
    assert data.meta.goal.indices == (0,) and data.meta.goal.tolerance == 0.02
    assert data.meta.state_names == ["slide_pos", "slide_vel"]
    assert "my_robots-Slider-v0-32px-ou-3x12-seed0-" in result.metrics["dataset"]
    assert result.checkpoint.is_file()
