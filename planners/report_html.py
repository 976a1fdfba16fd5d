"""Rendering the pages of a closed-loop evaluation: a self-contained ``report.html``, ``report.md``.

Both show the same things as ``report.json`` in the same folder, for people
(``planners.report_sections`` says what, as plain strings). ``report.html`` embeds its images
as base64 data URIs (one file to mail or attach); ``report.md`` links the PNG and GIFs by their
paths relative to the report folder. Every string from the report is escaped.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from planners.report_sections import (
    COLUMNS,
    OUTCOME_NOTE,
    TABLE_NOTE,
    episode_caption,
    page_sections,
)
from planners.results import EvalReport

__all__ = ["render_html", "render_markdown", "write_pages"]


_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2430;
background:#f5f6f8;margin:0}
main{max-width:1080px;margin:0 auto;padding:24px 32px 48px;background:#fff;min-height:100vh}
h1{font-size:24px;margin:8px 0 4px}h2{font-size:18px;margin:28px 0 10px;
border-bottom:1px solid #e3e6ea;padding-bottom:4px}
.lead{color:#4a5566;margin:0 0 16px}
table{border-collapse:collapse;margin:6px 0}
th,td{padding:5px 10px;border-bottom:1px solid #e3e6ea;text-align:left;vertical-align:top}
th{background:#f0f2f5;font-weight:600;font-size:13px}
table.runs{width:100%}table.runs td:first-child{white-space:nowrap;font-weight:500}
table.runs th:not(:first-child){text-align:right}
table.runs td:not(:first-child){text-align:right;font-variant-numeric:tabular-nums;
white-space:nowrap}
table.runs td.skipped{text-align:left;color:#8a5a00;font-style:italic}
table.kv th{width:220px;background:none;font-weight:500;color:#4a5566}
table.kv td,code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:13px}
code{word-break:break-all}
.plot{max-width:100%;height:auto;border:1px solid #e3e6ea}
.gifs{display:flex;flex-wrap:wrap;gap:16px}
figure{margin:0;padding:8px;border:1px solid #e3e6ea;border-radius:6px;max-width:320px}
figure img{image-rendering:pixelated;width:100%;height:auto;display:block}
figcaption{font-size:13px;color:#4a5566;margin-top:6px}
figcaption.success{color:#1f7a3a}figcaption.failure{color:#a33}
details{margin:10px 0}summary{cursor:pointer;font-weight:600}
.columns{display:flex;flex-wrap:wrap;gap:32px}
.note{color:#4a5566;font-size:13px}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _kv_html(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _runs_html(runs: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in COLUMNS)
    body = []
    for cells in runs:
        if len(cells) == 2:  # skipped: the reason spans the numbers
            body.append(f"<tr><td>{_e(cells[0])}</td><td class=\"skipped\" "
                        f"colspan=\"{len(COLUMNS) - 1}\">{_e(cells[1])}</td></tr>")
        else:
            body.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    return f'<table class="runs"><tr>{head}</tr>{"".join(body)}</table>'


def _outcomes_html(table: tuple[list[str], list[list[str]]] | None) -> list[str]:
    if table is None:
        return []
    header, rows = table
    head = "".join(f"<th>{_e(c)}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return ["<h2>Outcomes</h2>", f'<table class="runs"><tr>{head}</tr>{body}</table>',
            f'<p class="note">{_e(OUTCOME_NOTE)}</p>']


def render_html(report: EvalReport, plot: Path | None, videos: Sequence[Path]) -> str:
    """``report.html``: one page, the plot and the GIFs embedded."""
    s = page_sections(report)
    parts = [f"<h1>{_e(s['title'])}</h1>", f'<p class="lead">{_e(s["setting"])}</p>',
             "<h2>Results</h2>", _runs_html(s["runs"]),
             f'<p class="note">{_e(TABLE_NOTE)}</p>', *_outcomes_html(s["outcomes"]),
             '<div class="columns"><div><h2>Protocol</h2>', _kv_html(s["protocol"]),
             "</div><div><h2>Planner</h2>", _kv_html(s["planner"]), "</div></div>",
             "<h2>Distance to goal</h2>"]
    if plot is not None and plot.is_file():
        parts.append(f'<img class="plot" alt="distance to goal over env steps" '
                     f'src="{_data_uri(plot, "image/png")}">')
    else:
        parts.append('<p class="note">no distance plot</p>')
    parts.append("<h2>Episodes</h2>")
    if videos:
        parts.append('<p class="note">Each GIF: the agent\'s frames (left) beside its goal '
                     'frame (right).</p><div class="gifs">')
        for video in videos:
            caption, success = episode_caption(report, video)
            kind = {True: "success", False: "failure", None: ""}[success]
            parts.append(f'<figure><img alt="{_e(video.name)}" '
                         f'src="{_data_uri(video, "image/gif")}"><figcaption class="{kind}">'
                         f"{_e(caption)}</figcaption></figure>")
        parts.append("</div>")
    else:
        parts.append('<p class="note">no episode was recorded (plan.eval.videos=0)</p>')
    parts += ["<h2>Model</h2>", _kv_html(s["model"]),
              f"<details><summary>Plan config ({len(s['config'])} settings)</summary>",
              _kv_html(s["config"]), "</details>",
              f"<details><summary>Package versions ({len(s['versions'])})</summary>",
              _kv_html(s["versions"]), "</details>",
              '<p class="note">The numbers and every episode row are in report.json, next to '
              + "this file.</p>"]
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(s['title'])}</title><style>{_CSS}</style></head>\n<body><main>\n"
            + "\n".join(parts) + "\n</main></body></html>\n")


def _md(text: Any) -> str:
    """Safe in a Markdown table cell: no raw HTML, no cell breaks."""
    return _e(text).replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(_md(h) for h in header) + " |",
             "|" + "---|" * len(header)]
    for row in rows:
        cells = list(row) + [""] * (len(header) - len(row))
        lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
    return lines + [""]


def render_markdown(report: EvalReport, folder: Path, plot: Path | None,
                    videos: Sequence[Path]) -> str:
    """``report.md``: the same content, images linked relative to ``folder``."""
    s = page_sections(report)
    lines = [f"# {_md(s['title'])}", "", _md(s["setting"]), "", "## Results", "",
             *_md_table(COLUMNS, s["runs"]), TABLE_NOTE, "",
             *(["## Outcomes", "", *_md_table(*s["outcomes"]), OUTCOME_NOTE, ""]
               if s["outcomes"] else []),
             "## Protocol", "", *_md_table(("item", "value"), s["protocol"]),
             "## Planner", "", *_md_table(("setting", "value"), s["planner"]),
             "## Distance to goal", ""]
    if plot is not None and plot.is_file():
        lines += [f"![distance to goal]({plot.relative_to(folder).as_posix()})", ""]
    lines += ["## Episodes", ""]
    if not videos:
        lines += ["No episode was recorded (plan.eval.videos=0).", ""]
    for video in videos:
        lines += [f"![{_md(video.name)}]({video.relative_to(folder).as_posix()})", "",
                  f"*{_md(episode_caption(report, video)[0])}*", ""]
    lines += ["## Model", "", *_md_table(("item", "value"), s["model"]),
              "## Plan config", "", *_md_table(("key", "value"), s["config"]),
              "## Package versions", "", *_md_table(("package", "version"), s["versions"])]
    return "\n".join(lines)


def write_pages(report: EvalReport, folder: Path, plot: Path | None,
                videos: Sequence[Path]) -> tuple[Path, Path]:
    """``folder/report.html`` and ``folder/report.md``; ``plot`` and ``videos`` lie in
    ``folder``."""
    folder = Path(folder)
    return (_write_utf8(folder / "report.html", render_html(report, plot, videos)),
            _write_utf8(folder / "report.md", render_markdown(report, folder, plot, videos)))


def _write_utf8(path: Path, text: str) -> Path:
    """UTF-8 whatever the locale, through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
