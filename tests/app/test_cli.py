"""The ``wml`` command: subcommands, their help, and ``--print-config``."""

import importlib.metadata
import subprocess
import sys

import pytest
import yaml
from omegaconf import OmegaConf

from configs.schema import ExperimentConfig
from worldmodel.app.cli import COMMANDS, main


def test_wml_is_installed_as_a_console_script():
    scripts = {e.name: e.value for e in importlib.metadata.entry_points(group="console_scripts")}
    assert scripts.get("wml") == "worldmodel.app.cli:main"


def test_wml_help_lists_every_subcommand():
    done = subprocess.run([sys.executable, "-m", "worldmodel.app", "--help"],
                          capture_output=True, text=True, timeout=60, check=True)
    for name in ("train", "plan", "collect", "inspect", "export", "import", "verify"):
        assert f"\n  {name} " in done.stdout
    assert "lightning" not in done.stderr.lower()


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: wml {name}")


def test_an_unknown_subcommand_is_a_clear_error(capsys):
    assert main(["trian"]) == 2
    assert "unknown subcommand 'trian'" in capsys.readouterr().err


def _leaves(node, prefix=""):
    out = set()
    for key, value in node.items():
        out |= _leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key}
    return out


def test_print_config_shows_every_key_with_its_resolved_value(capsys):
    assert main(["train", "--config", "point_mass", "--print-config",
                 "trainer.max_steps=123"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    schema = OmegaConf.to_container(OmegaConf.structured(ExperimentConfig))
    assert _leaves(printed) >= _leaves(schema)
    assert printed["trainer"]["max_steps"] == 123 and printed["name"] == "point_mass"
    assert printed["plan"]["planner"]["name"] == "cem"  # a default the YAML does not set


def test_wml_export_import_verify_and_inspect_a_dataset(tiny_dataset, tmp_path, capsys):
    import numpy as np

    from envs.dataset import PixelDataset

    h5 = tmp_path / "reacher.h5"
    assert main(["export", str(tiny_dataset), str(h5), "--no-progress"]) == 0  # a dataset: hdf5
    back = tmp_path / "back"
    assert main(["import", str(h5), str(back), "--no-progress"]) == 0
    assert f"wml train data.path={back}" in capsys.readouterr().out
    a, b = PixelDataset(tiny_dataset), PixelDataset(back)
    np.testing.assert_array_equal(a.episode(1)["pixels"], b.episode(1)["pixels"])
    assert main(["verify", str(back)]) == 0
    assert "match their checksums" in capsys.readouterr().out
    assert main(["inspect", str(back), "--out", str(tmp_path / "look"), "--verify"]) == 0
    assert "shoulder" in capsys.readouterr().out
    assert (tmp_path / "look" / "contact_sheet.png").is_file()
    assert (tmp_path / "look" / "episodes.gif").is_file()
    pixels = back / "shard-00000" / "pixels.npy"
    raw = bytearray(pixels.read_bytes())
    raw[-100:] = bytes(100)
    pixels.write_bytes(bytes(raw))
    assert main(["verify", str(back)]) == 1
    assert "shard-00000/pixels.npy fails its checksum" in capsys.readouterr().err
    assert main(["inspect", str(back), "--verify"]) == 1


def test_wml_import_of_a_missing_file_is_a_clear_error(tmp_path, capsys):
    assert main(["import", str(tmp_path / "none.h5"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "none.h5" in err


def test_ctrl_c_and_dataset_errors_are_one_line_in_every_command(monkeypatch, capsys, tmp_path):
    import envs.interop
    import worldmodel.export
    from envs.dataset import DatasetError
    from worldmodel.app import plan as plan_module

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(envs.interop, "import_hdf5", interrupt)
    monkeypatch.setattr(worldmodel.export, "export_model", interrupt)
    monkeypatch.setattr(plan_module, "plan", interrupt)
    assert main(["import", str(tmp_path / "x.h5"), str(tmp_path / "out")]) == 130
    assert "complete shards are kept" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "model.ckpt"), str(tmp_path / "e")]) == 130
    assert "was not written" in capsys.readouterr().err
    assert main(["plan", "--config", "reacher"]) == 130
    err = capsys.readouterr().err
    assert "interrupted: no report was written" in err and "Traceback" not in err

    def broken(*args, **kwargs):
        raise DatasetError("/data/x/meta.json is corrupt; collect again")

    monkeypatch.setattr(plan_module, "plan", broken)
    assert main(["plan", "--config", "reacher"]) == 2
    assert capsys.readouterr().err.strip() == "error: /data/x/meta.json is corrupt; collect again"
