"""The "use it from Python" page: its example runs as written, and the names it lists exist."""

import re
from pathlib import Path

import worldmodel

DOC = Path(__file__).resolve().parents[2] / "docs" / "python_api.md"


def test_the_documented_example_runs(capsys):
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL).group(1)
    exec(compile(code, str(DOC), "exec"), {"__name__": "python_api_example"})  # noqa: S102
    out = capsys.readouterr().out
    assert "(32, 32, 3)" in out and "6 episodes, 126 frames" in out
    assert re.search(r"agent \d+%, floor \d+%", out) and "8 wm/reacher-v0" in out


def test_every_public_name_resolves():
    for name in worldmodel.__all__:
        assert getattr(worldmodel, name) is not None
    assert set(worldmodel.__all__) <= set(dir(worldmodel))
