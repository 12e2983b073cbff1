"""The health report as one self-contained HTML page: Plotly charts, plain tables, no network.

plotly.js (shipped inside the `plotly` wheel) is inlined once in the page's head and every
chart is a `Plotly.newPlot` on its own panel, so the file opens anywhere, offline. The data
behind the panels is embedded as JSON (`<script type="application/json" id="report-data">`)
for anyone, a test included, who wants the numbers rather than the pictures.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from etl_assets.core.health_report import HealthReport

STATUS_COLORS = {"SUCCESS": "#2e9d5b", "FAILED": "#d9423a", "RETRY": "#f0a030", "HELD": "#7b4fc9",
                 "DISCARDED": "#5c5c5c"}
OTHER_COLOR = "#8c8c8c"
FLAG_COLOR = "#d9423a"
SPARK_COLUMNS = 3
PLOT_CONFIG = {"displaylogo": False, "responsive": True,
               "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"

# Panel ids and titles, in page order; the browser test expects a rendered chart or table
# in each of them.
PANELS = {
    "totals": "Tables loaded and rows",
    "status": "Status distribution",
    "status-by-domain": "Status by domain",
    "daily-runs": "Runs per day",
    "daily-rows": "Rows loaded per day",
    "durations": "Duration per table (slowest first)",
    "failures": "Recent failures",
    "flags": "Open anomaly and quality flags",
    "sparklines": "Row count per table (flagged loads marked)",
}
TABLE_PANELS = ("failures", "flags")
WIDE_PANELS = ("totals", "durations", "failures", "flags", "sparklines")

STYLE = """
* { box-sizing: border-box; }
body { margin: 0; font-family: %(font)s; background: #f4f5f7; color: #1f2328; }
header { padding: 18px 28px 10px; background: #fff; border-bottom: 1px solid #dde1e6; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: #57606a; font-size: 13px; }
.banner { margin: 16px 28px 0; padding: 14px 18px; border-radius: 6px; background: #fff8e1;
          border: 1px solid #f0d58c; font-size: 15px; }
main { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 16px;
       padding: 16px 28px 28px; }
.panel { background: #fff; border: 1px solid #dde1e6; border-radius: 6px; padding: 12px 14px;
         min-width: 0; }
.panel.wide { grid-column: 1 / -1; }
.panel h2 { margin: 0 0 8px; font-size: 15px; font-weight: 600; }
.panel .note { color: #57606a; font-size: 12px; margin: -4px 0 6px; }
.empty { color: #57606a; font-style: italic; margin: 24px 0; text-align: center; }
table { border-collapse: collapse; width: 100%%; font-size: 12.5px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #eaeef2;
         vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.error { font-family: ui-monospace, monospace; white-space: pre-wrap; word-break: break-word;
           max-width: 560px; color: #8c1d18; }
.sev-ERROR { color: #fff; background: #d9423a; border-radius: 3px; padding: 1px 6px; }
.sev-WARN { color: #4a3500; background: #f6d365; border-radius: 3px; padding: 1px 6px; }
@media (max-width: 1100px) { main { grid-template-columns: 1fr; } }
""" % {"font": FONT}


def _color(status: str) -> str:
    return STATUS_COLORS.get(status, OTHER_COLOR)


def _layout(fig: go.Figure, height: int, **extra: Any) -> go.Figure:
    settings: dict[str, Any] = {
        "margin": {"l": 50, "r": 16, "t": 16, "b": 36}, "font": {"family": FONT, "size": 12},
        "template": "plotly_white", "legend": {"orientation": "h", "y": -0.18}}
    fig.update_layout(height=height, **{**settings, **extra})
    return fig


def _statuses(rows: Iterable[dict[str, Any]]) -> list[str]:
    present = {r["status"] for r in rows}
    known = [s for s in STATUS_COLORS if s in present]
    return known + sorted(present - set(known))


def totals_figure(report: HealthReport) -> go.Figure:
    """Big numbers: tables loaded, rows loaded, runs, failed runs, open flags."""
    t = report.totals
    numbers = [("Tables loaded", t["tables_loaded"], "#1f2328"),
               ("Rows loaded", t["rows_loaded"], "#1f2328"),
               ("Runs", t["runs"], "#1f2328"),
               ("Failed runs", t["failed"], FLAG_COLOR if t["failed"] else "#1f2328"),
               ("Open flags", t["open_flags"], FLAG_COLOR if t["open_flags"] else "#1f2328")]
    fig = go.Figure()
    for i, (title, value, color) in enumerate(numbers):
        fig.add_trace(go.Indicator(
            mode="number", value=value, title={"text": title, "font": {"size": 14}},
            number={"valueformat": ",.0f", "font": {"size": 34, "color": color}},
            domain={"row": 0, "column": i}))
    return _layout(fig, 150, grid={"rows": 1, "columns": len(numbers)},
                   margin={"l": 10, "r": 10, "t": 30, "b": 10})


def status_figure(report: HealthReport) -> go.Figure:
    """Runs by status, as a donut."""
    statuses = [r["status"] for r in report.status]
    fig = go.Figure(go.Pie(
        labels=statuses, values=[r["runs"] for r in report.status], hole=0.55, sort=False,
        marker={"colors": [_color(s) for s in statuses]}, textinfo="label+percent"))
    return _layout(fig, 300, showlegend=False)


def status_by_domain_figure(report: HealthReport) -> go.Figure:
    """Runs per domain, stacked by status."""
    domains = sorted({r["domain"] for r in report.status_by_domain})
    fig = go.Figure()
    for status in _statuses(report.status_by_domain):
        runs = {r["domain"]: r["runs"] for r in report.status_by_domain if r["status"] == status}
        fig.add_trace(go.Bar(name=status, orientation="h", y=domains,
                             x=[runs.get(d, 0) for d in domains], marker_color=_color(status)))
    return _layout(fig, max(220, 80 + 34 * len(domains)), barmode="stack",
                   xaxis_title="runs", yaxis={"automargin": True})


def _days_axis(report: HealthReport) -> dict[str, Any]:
    """The whole period on the x axis, quiet days included (half a day of margin each side)."""
    before = date.fromisoformat(report.start) - timedelta(days=1)
    return {"type": "date", "range": [f"{before} 12:00", f"{report.end} 12:00"]}


def daily_runs_figure(report: HealthReport) -> go.Figure:
    """Runs per day, stacked by status."""
    fig = go.Figure()
    for status in _statuses(report.daily):
        rows = [r for r in report.daily if r["status"] == status]
        fig.add_trace(go.Bar(name=status, x=[r["day"] for r in rows],
                             y=[r["runs"] for r in rows], marker_color=_color(status)))
    return _layout(fig, 300, barmode="stack", xaxis=_days_axis(report), yaxis_title="runs")


def daily_rows_figure(report: HealthReport) -> go.Figure:
    """Rows written by successful loads per day."""
    rows = [r for r in report.daily if r["status"] == "SUCCESS"]
    fig = go.Figure(go.Bar(x=[r["day"] for r in rows], y=[r["rows_loaded"] for r in rows],
                           marker_color="#3b6fb6", name="rows"))
    return _layout(fig, 300, xaxis=_days_axis(report), yaxis_title="rows", showlegend=False)


def durations_figure(report: HealthReport) -> go.Figure:
    """Mean duration of each table's successful loads per day; slowest tables on top."""
    tables = [s["asset"] for s in report.slowest]
    days = sorted({r["day"] for r in report.durations})
    cell = {(r["asset"], r["day"]): r["duration_s"] for r in report.durations}
    z = [[cell.get((t, d)) for d in days] for t in tables]
    fig = go.Figure(go.Heatmap(
        x=days, y=tables, z=z, colorscale="YlOrRd", colorbar={"title": {"text": "s"}},
        hovertemplate="%{y}<br>%{x}<br>%{z:.1f} s<extra></extra>", xgap=1, ygap=1))
    return _layout(fig, max(240, 90 + 24 * len(tables)),
                   yaxis={"autorange": "reversed", "automargin": True, "type": "category"},
                   xaxis=_days_axis(report))


def sparklines_figure(report: HealthReport) -> go.Figure:
    """Small multiples of row_count per load; loads with a failed check as red crosses."""
    count = len(report.sparklines)
    rows = math.ceil(count / SPARK_COLUMNS)
    fig = make_subplots(rows=rows, cols=SPARK_COLUMNS,
                        subplot_titles=[s["asset"] for s in report.sparklines],
                        vertical_spacing=min(0.12, 0.5 / rows), horizontal_spacing=0.06)
    for i, spark in enumerate(report.sparklines):
        row, col = i // SPARK_COLUMNS + 1, i % SPARK_COLUMNS + 1
        points = spark["points"]
        fig.add_trace(go.Scatter(
            x=[p["x"] for p in points], y=[p["row_count"] for p in points],
            mode="lines+markers", line={"color": "#3b6fb6", "width": 1.5},
            marker={"size": 4}, name=spark["asset"],
            hovertemplate="%{x}<br>%{y:,} rows<extra></extra>"), row=row, col=col)
        flagged = [p for p in points if p["flagged"]]
        if flagged:
            fig.add_trace(go.Scatter(
                x=[p["x"] for p in flagged], y=[p["row_count"] for p in flagged],
                mode="markers", marker={"color": FLAG_COLOR, "size": 11, "symbol": "x"},
                name="flagged", text=[p["flagged"] for p in flagged],
                hovertemplate="%{x}<br>%{y:,} rows<br>failed: %{text}<extra></extra>"),
                row=row, col=col)
    fig.update_xaxes(showticklabels=False, showgrid=False)
    fig.update_yaxes(tickformat="~s", nticks=3)
    fig.update_annotations(font_size=12)
    return _layout(fig, 40 + 130 * rows, showlegend=False,
                   margin={"l": 40, "r": 10, "t": 30, "b": 10})


def _cell(value: Any, css: str = "") -> str:
    text = "" if value is None else (f"{value:,.4g}" if isinstance(value, float) else str(value))
    klass = f' class="{css}"' if css else ""
    return f"<td{klass}>{html.escape(text)}</td>"


def failures_table(report: HealthReport) -> str:
    """The newest failed loads with their error text."""
    head = "<tr><th>finished</th><th>table</th><th>partition</th><th>run</th><th>error</th></tr>"
    rows = [
        "<tr>" + _cell(f["finished_at"]) + _cell(f["asset"]) + _cell(f["partition_key"])
        + _cell((f["run_id"] or "")[:8]) + _cell(f["error"], "error") + "</tr>"
        for f in report.failures
    ]
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def flags_table(report: HealthReport) -> str:
    """Checks whose latest evaluation failed, with the check's own one-line explanation."""
    head = ("<tr><th>severity</th><th>table</th><th>check</th><th>value</th><th>baseline</th>"
            "<th>why</th><th>checked</th></tr>")
    rows = []
    for f in report.flags:
        severity = html.escape(str(f["severity"]))
        table = f["asset"] + (f" [{f['partition_key']}]" if f["partition_key"] else "")
        rows.append(
            f'<tr><td><span class="sev-{severity}">{severity}</span></td>' + _cell(table)
            + _cell(f["check_name"]) + _cell(f["value"], "num") + _cell(f["baseline"], "num")
            + _cell(f["description"]) + _cell(f["checked_at"]) + "</tr>")
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _chart(fig: go.Figure, name: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{name}",
                       config=PLOT_CONFIG, default_height=f"{fig.layout.height}px")


def _panel(name: str, body: str, note: str = "") -> str:
    css = "panel wide" if name in WIDE_PANELS else "panel"
    note_html = f'<p class="note">{html.escape(note)}</p>' if note else ""
    return (f'<section class="{css}" id="panel-{name}" data-panel="{name}">'
            f"<h2>{html.escape(PANELS[name])}</h2>{note_html}{body}</section>")


def _empty(text: str) -> str:
    return f'<p class="empty">{html.escape(text)}</p>'


def panels(report: HealthReport) -> list[str]:
    """Every panel's HTML, in `PANELS` order."""
    nothing = "No runs in this period."
    sections = [_panel("totals", _chart(totals_figure(report), "totals"))]
    if report.empty:
        sections += [_panel(name, _empty(nothing)) for name in list(PANELS)[1:]]
        return sections
    sections += [
        _panel("status", _chart(status_figure(report), "status")),
        _panel("status-by-domain", _chart(status_by_domain_figure(report), "status-by-domain")),
        _panel("daily-runs", _chart(daily_runs_figure(report), "daily-runs")),
        _panel("daily-rows", _chart(daily_rows_figure(report), "daily-rows")),
        _panel("durations", _chart(durations_figure(report), "durations"),
               note="mean seconds of successful loads per day"),
        _panel("failures", failures_table(report) if report.failures
               else _empty("No failed runs in this period.")),
        _panel("flags", flags_table(report) if report.flags
               else _empty("No open flags: every check passed its latest evaluation."),
               note="checks whose latest evaluation failed"),
        _panel("sparklines", _chart(sparklines_figure(report), "sparklines")
               if report.sparklines else _empty("No successful loads in this period.")),
    ]
    return sections


def _json_script(data: dict[str, Any]) -> str:
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, default=str)
    text = text.replace("<", "\\u003c")  # no "</script>" or "<!--" inside the script
    return f'<script type="application/json" id="report-data">{text}</script>'


def render_page(report: HealthReport) -> str:
    """The whole page as one HTML string (plotly.js inlined: about 5 MB)."""
    banner = ""
    if report.empty:
        text = (f"No runs in the last {report.days} days: the newest runs are older. "
                "Widen the period with --days." if report.log_has_runs else
                f"No runs yet: {report.log_db}.run_log is empty. Run `make demo`, or "
                "materialize a table, then refresh this report.")
        banner = f'<div class="banner" id="no-runs">{html.escape(text)}</div>'
    title = f"Pipeline health: {report.start} to {report.end}"
    subtitle = (f"{report.days} days from {report.log_db}.run_log and {report.log_db}.check_log"
                f" &middot; generated {html.escape(report.generated_at)} UTC")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{STYLE}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
{_json_script(report.to_dict())}
</head>
<body>
<header><h1>{html.escape(title)}</h1><p>{subtitle}</p></header>
{banner}
<main>
{chr(10).join(panels(report))}
</main>
</body>
</html>
"""
