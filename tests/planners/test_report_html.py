"""report.html and report.md: the run table's numbers, embedded images, escaping, edge cases."""

import base64
import re
from dataclasses import replace

import numpy as np

from envs.goals import GoalSpec
from planners.planner_record import PlannerRecord
from planners.report import merge_shards, write_eval_shard, write_report
from planners.report_html import render_html, render_markdown
from planners.results import EpisodeRow, EvalReport, RunSummary, ShardInfo

GOAL = GoalSpec(indices=(0, 1), tolerance=0.05, angular=(True, True))
CONFIG = {"checkpoint": None, "eval": {"episodes": 3, "num_envs": 1, "videos": 2, "shard": 0,
                                       "replan_every": 1, "objective": "last"}}


def _row(seed: int, success: bool, recorded: bool = True) -> EpisodeRow:
    frames = goal = None
    if recorded:
        rng = np.random.default_rng(seed)
        frames = [rng.integers(0, 255, (8, 8, 3), dtype=np.uint8) for _ in range(3)]
        goal = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    distance = [0.5, 0.2, 0.01] if success else [0.5, 0.3, 0.4]
    return EpisodeRow(seed, success, 2 if success else 3, distance[-1], min(distance),
                      distance, [10.0, 12.0] if seed == 0 else [], frames, goal)


def _report(**changes) -> EvalReport:
    """Three episodes: the agent reaches two (the first two recorded), the floor none."""
    agent = RunSummary.from_rows([_row(0, True), _row(1, False), _row(2, True, False)])
    floor = RunSummary.from_rows([replace(_row(s, False, False), plan_ms=[]) for s in range(3)])
    report = EvalReport(GOAL, 3, [0, 1, 2], agent, floor,
                        RunSummary.skip("my-env cannot be simulated from a snapshot"),
                        env_id="wm/reacher-v0", checkpoint="runs/reacher/model.ckpt",
                        checkpoint_sha256="ab" * 32,
                        planner=PlannerRecord(samples=16, iterations=2, elites=4, horizon=3,
                                              name="cem", model_calls_per_plan=96),
                        device="cpu", precision="fp32", wall_seconds=3.5, config=CONFIG,
                        versions={"python": "3.11.9", "torch": "2.5.1"}, goal_source="policy")
    return replace(report, **changes)


def _data_uris(page: str) -> list[tuple[str, bytes]]:
    return [(mime, base64.b64decode(data))
            for mime, data in re.findall(r'src="data:(image/\w+);base64,([A-Za-z0-9+/=]+)"', page)]


def _table_rows(page: str) -> list[list[str]]:
    table = re.search(r'<table class="runs">(.*?)</table>', page).group(1)
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", table)
            if "<td" in row]


def test_write_report_writes_pages_with_the_run_table_and_embedded_images(tmp_path):
    write_report(_report(), tmp_path)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    agent, floor, ceiling = _table_rows(page)
    # 2 of 3, Wilson 95% interval 20.8%-93.9%, none solved at start, 2 plan calls of 10, 12 ms
    assert agent == ["world model (agent)", "66.7%", "21% – 94%", "2/3", "0/3", "66.7% (2/3)",
                     "0.010", "11 (p90 12, 2 calls)"]
    assert floor == ["random floor", "0.0%", "0% – 56%", "0/3", "0/3", "0.0% (0/3)", "0.400",
                     "–"]
    assert ceiling == ["true-sim ceiling", "skipped: my-env cannot be simulated from a snapshot"]
    images = _data_uris(page)
    assert [mime for mime, _ in images] == ["image/png", "image/gif", "image/gif"]
    assert images[0][1].startswith(b"\x89PNG\r\n\x1a\n")
    assert all(data[:6] in (b"GIF87a", b"GIF89a") for _, data in images[1:])
    assert images[1][1] == (tmp_path / "videos" / "episode-00000.gif").read_bytes()
    assert "episode 0 (seed 0): success, reached the goal in 2 steps" in page
    assert "episode 1 (seed 1): failure, not reached: final distance 0.400" in page
    assert "ab" * 32 in page and "plan.eval.videos" in page and "torch" in page
    assert "wm/reacher-v0" in page and "cem 16×2" in page and "budget 3 env steps" in page


def test_report_md_links_files_that_exist(tmp_path):
    write_report(_report(), tmp_path)
    notes = (tmp_path / "report.md").read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", notes)
    assert links == ["distance.png", "videos/episode-00000.gif", "videos/episode-00001.gif"]
    assert all((tmp_path / link).is_file() for link in links)
    assert "| world model (agent) | 66.7% | 21% – 94% | 2/3 |" in notes
    assert "| true-sim ceiling | skipped: my-env cannot be simulated from a snapshot |" in notes


def test_strings_from_the_report_are_escaped(tmp_path):
    evil = "<script>alert(1)</script>"
    report = _report(env_id=f"wm/{evil}", config={**CONFIG, "note": evil},
                     ceiling=RunSummary.skip(f"because {evil} | x"))
    page, notes = render_html(report, None, []), render_markdown(report, tmp_path, None, [])
    for text in (page, notes):
        assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "because &lt;script&gt;alert(1)&lt;/script&gt; \\| x" in notes  # no cell break


def test_no_videos_and_no_ceiling_still_give_complete_pages(tmp_path):
    report = _report(config={**CONFIG, "eval": {**CONFIG["eval"], "videos": 0}}, ceiling=None,
                     floor=None)
    write_report(report, tmp_path)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert [mime for mime, _ in _data_uris(page)] == ["image/png"]
    assert "no episode was recorded" in page and len(_table_rows(page)) == 1
    assert page.rstrip().endswith("</html>")
    assert "No episode was recorded" in (tmp_path / "report.md").read_text(encoding="utf-8")


def test_a_merged_report_shows_the_videos_its_shards_wrote(tmp_path):
    whole = _report(ceiling=None)
    for index, seeds in ((0, [0, 2]), (1, [1])):
        agent = RunSummary.from_rows([r for r in whole.agent.rows if r.seed in seeds])
        floor = RunSummary.from_rows([r for r in whole.floor.rows if r.seed in seeds])
        config = {**CONFIG, "eval": {**CONFIG["eval"], "shard": index}}
        write_eval_shard(replace(whole, agent=agent, floor=floor, seeds=seeds, config=config,
                                 shard=ShardInfo(index, 2, seeds)), tmp_path)
    merged = merge_shards(tmp_path, 2)
    assert merged.agent.rows[0].frames is None  # the frames stayed in the shards' memory
    write_report(merged, tmp_path)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert [mime for mime, _ in _data_uris(page)] == ["image/png", "image/gif", "image/gif"]
    assert "merged from 2 shards" in page and _table_rows(page)[0][3] == "2/3"


def test_outcomes_get_a_table_and_label_the_failure_gif(tmp_path):
    labels = {0: "solved", 1: "reached, never lifted", 2: "solved"}
    agent = RunSummary.from_rows([replace(_row(s, s != 1, s < 2), outcome=labels[s])
                                  for s in range(3)])
    floor = RunSummary.from_rows([replace(_row(s, False, False), plan_ms=[],
                                          outcome="never reached the cube") for s in range(3)])
    write_report(_report(agent=agent, floor=floor), tmp_path)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    table = re.findall(r'<h2>Outcomes</h2>\s*<table class="runs">(.*?)</table>', page)[0]
    header = re.findall(r"<th>(.*?)</th>", table)
    assert header == ["run", "solved", "reached, never lifted", "never reached the cube"]
    rows = [re.findall(r"<td>(.*?)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", table)][1:]
    assert rows == [["world model (agent)", "2", "1", "0"], ["random floor", "0", "0", "3"]]
    assert "failure, not reached: final distance 0.400 (reached, never lifted)" in page
    notes = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "| random floor | 0 | 0 | 3 |" in notes


def test_pages_have_no_outcome_table_when_the_env_does_not_classify(tmp_path):
    write_report(_report(), tmp_path)
    assert "Outcomes" not in (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Outcomes" not in (tmp_path / "report.md").read_text(encoding="utf-8")
