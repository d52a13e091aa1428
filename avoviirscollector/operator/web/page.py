"""The status page: one HTML document from views.status(), with inline CSS and SVG.

No script at all: the browser reloads it every REFRESH_SECONDS (``<meta refresh>``),
which a wall screen does for months without leaking memory. Large type that grows
with the screen, two columns when there is room, every time in UTC and labelled so.
No I/O.
"""

from __future__ import annotations

from html import escape

from avoviirscollector.operator import display
from avoviirscollector.operator.web import charts
from avoviirscollector.operator.web.history_rules import WINDOWS
from avoviirscollector.operator.web.views import epoch_of, iso

REFRESH_SECONDS = 15
#: A satellite whose newest file is older than this is shown in amber, twice that in red.
STALE_SECONDS = 3 * 3600
FILES_SHOWN = 100

CSS = """
:root { color-scheme: dark; --bg:#111418; --card:#1b2027; --text:#e8eaed; --dim:#9aa0a6;
  --ok:#5bd08a; --warn:#f2c14e; --bad:#ff6b6b; --line:#2e353f; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--text);
  font: clamp(14px, 0.55vw + 9px, 26px)/1.35 system-ui, "DejaVu Sans", sans-serif; }
header { display:flex; flex-wrap:wrap; gap:.4em 1.5em; align-items:baseline; padding:.6em 1em;
  background:var(--card); border-bottom:1px solid var(--line); }
header h1 { font-size:1.35em; margin:0; }
header .windows a { color:var(--text); margin-right:.6em; }
header .windows a.on { color:var(--bg); background:var(--text); padding:0 .3em; border-radius:3px; }
main { display:grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 34em), 1fr));
  gap:1em; padding:1em; }
section { background:var(--card); border:1px solid var(--line); border-radius:6px;
  padding:.6em .9em;
  min-width:0; }
section.wide { grid-column: 1 / -1; }
h2 { font-size:1.1em; margin:.1em 0 .5em; }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:.15em .5em .15em 0; border-bottom:1px solid var(--line);
  white-space:nowrap; }
th { color:var(--dim); font-weight:normal; }
td.num { text-align:right; font-variant-numeric: tabular-nums; }
.scroll { overflow-x:auto; }
.ok { color:var(--ok); } .warn { color:var(--warn); } .bad, .missing { color:var(--bad); }
td.missing { font-weight:bold; }
.dim, .note { color:var(--dim); }
svg.chart, svg.bar { width:100%; height:auto; display:block; }
svg .grid { stroke:var(--line); stroke-width:1; }
svg .tick, svg .legend { fill:var(--dim); font-size:13px; }
svg .label { fill:var(--dim); font-size:14px; }
svg .empty { fill:var(--dim); font-size:18px; }
svg .track { fill:var(--line); } svg .used { fill:#56B4E9; }
svg .mark { stroke:var(--bad); stroke-width:3; }
"""


def when(text: str | None) -> str:
    """``2026-12-01 09:30:00 UTC`` (the model's ISO time), or a dash."""
    return "–" if not text else text.replace("T", " ").replace("Z", " UTC")


def ago(seconds: float | None) -> str:
    """An age for people."""
    return "–" if seconds is None else display.duration(seconds)


def minutes(seconds: float | None) -> str:
    """A delay in minutes."""
    return "–" if seconds is None else f"{seconds / 60:.1f} min"


def age_class(seconds: float | None) -> str:
    """ok / warn / bad for a newest file's age."""
    if seconds is None or seconds > 2 * STALE_SECONDS:
        return "bad"
    return "warn" if seconds > STALE_SECONDS else "ok"


def _table(head: list[str], rows: list[str], table_id: str = "") -> str:
    ident = f' id="{table_id}"' if table_id else ""
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    return f'<div class="scroll"><table{ident}><tr>{header}</tr>{"".join(rows)}</table></div>'


def satellites_section(model: dict) -> str:
    """Per satellite: newest file and its age, delays and the longest gap in the window."""
    rows = []
    for sat in model["satellites"]:
        css = age_class(sat["age_seconds"])
        rows.append(
            f'<tr class="satellite" data-satellite="{sat["satellite"]}">'
            f"<td>{escape(sat['name'])}</td>"
            f'<td class="{css}">{ago(sat["age_seconds"])}</td>'
            f"<td>{when(sat['last_arrival'])}</td>"
            f'<td class="num">{sat["files_in_window"]}</td>'
            f'<td class="num">{minutes(sat["median_delay_seconds"])}</td>'
            f'<td class="num">{minutes(sat["max_delay_seconds"])}</td>'
            f'<td class="num">{ago(sat["longest_gap_seconds"])}</td>'
            f"<td>{escape(sat['last_file'] or 'no file recorded')}</td></tr>"
        )
    head = [
        "satellite",
        "newest file age",
        "newest file arrived",
        "files",
        "median delay",
        "max delay",
        "longest gap",
        "newest file",
    ]
    return (
        f'<section id="satellites" class="wide"><h2>Satellites: last {model["window_hours"]} h</h2>'
        + _table(head, rows, "satellite-table")
        + '<p class="note">delay: file arrival in sdr/ minus granule start; gap: longest pause '
        "between two files of the satellite, counting the time since the newest.</p></section>"
    )


def delay_section(model: dict) -> str:
    """Acquisition delay per file over the window: passes show as clusters."""
    series: dict[str, list[tuple[float, float]]] = {}
    for _, platform, start, arrival in model["delays"]:
        series.setdefault(platform, []).append((arrival, arrival - start))
    x_range = (epoch_of(model["window_start"]), epoch_of(model["generated"]))
    names = {s["satellite"]: s["name"] for s in model["satellites"]}
    svg = charts.scatter(
        "delay-plot",
        "acquisition delay per file",
        series,
        x_range,
        x_label="file arrival time (UTC)",
        y_label="delay (minutes)",
        names=names,
        y_scale=60.0,
    )
    gaps = "".join(
        f"<li>{escape(names.get(g['satellite'], g['satellite']))}: no file from "
        f"{when(g['from'])} to {when(g['to'])} "
        f"({ago(g['seconds'])})</li>"
        for g in model["gaps"]
    )
    gap_text = (
        f'<ul id="gaps">{gaps}</ul>'
        if gaps
        else '<p id="gaps" class="note">no gap '
        "longer than 3 h between files of one satellite in this window</p>"
    )
    return (
        '<section id="delay" class="wide"><h2>Acquisition delay per file '
        f"({len(model['delays'])} files)</h2>{svg}<h2>Gaps</h2>{gap_text}</section>"
    )


def _cell(product: dict) -> str:
    if product["complete"]:
        mark = "published" if product["published"] else "all files"
        return f'<td class="complete ok">✓ {mark}</td>'
    return f'<td class="missing">missing {escape(", ".join(product["missing"]))}</td>'


def passes_section(model: dict) -> str:
    """The last passes: per granule and product, complete or which file is missing."""
    products = list(model["products"])
    parts = ['<section id="passes" class="wide"><h2>Last passes: granules per product</h2>']
    if not model["passes"]:
        parts.append('<p class="note">no granule in this window</p>')
    for one in model["passes"]:
        rows = [
            f'<tr class="granule" data-orbit="{g["orbit"]}"><td>{when(g["start"])}</td>'
            f'<td class="num">{g["orbit"]}</td>'
            + "".join(_cell(g["products"][p]) for p in products if p in g["products"])
            + "</tr>"
            for g in one["granules"]
        ]
        parts.append(
            f"<h3>{escape(one['name'])}: {len(one['granules'])} granule(s), "
            f"{when(one['first_granule'])} to {when(one['last_granule'])}</h3>"
        )
        parts.append(_table(["granule start", "orbit", *products], rows))
    parts.append(
        '<p class="note">✓ published: the gatherer announced the granule; '
        "missing: files the product needs that have not arrived.</p></section>"
    )
    return "".join(parts)


def queue_section(model: dict) -> str:
    """The queue over the window per product, the tasks handed out, the oldest task."""
    series: dict[str, list[tuple[float, float]]] = {p: [] for p in model["products"]}
    for sample in model["queue"]["samples"]:
        moment = epoch_of(sample["time"])
        for product, count in sample["per_product"].items():
            series.setdefault(product, []).append((moment, count))
    x_range = (epoch_of(model["window_start"]), epoch_of(model["generated"]))
    if not model["queue"]["samples"]:
        series = {}
    svg = charts.steps(
        "queue-plot",
        "tasks waiting per product",
        series,
        x_range,
        x_label="time (UTC)",
        y_label="tasks waiting",
    )
    now = model["queue"]["now"]
    if now is None:
        head = '<p class="note">no queue state recorded yet (is task_broker running?)</p>'
    else:
        head = (
            f'<p id="queue-now">{now["length"]} task(s) waiting, {now["leased"] or 0} leased; '
            f"oldest waiting {ago(now['oldest_task_age_seconds'])}; "
            f"sampled {when(now['sampled'])}</p>"
        )
    rows = [
        f'<tr data-product="{escape(p)}"><td>{escape(p)}</td><td class="num">{t["waiting"]}</td>'
        f'<td class="num">{t["tasks_handed_out"]}</td>'
        f'<td class="num">{t["granules_handed_out"]}</td>'
        f'<td class="num">{t["acknowledged"]}</td></tr>'
        for p, t in model["tasks"].items()
    ]
    table = _table(
        [
            "product",
            "waiting",
            f"tasks handed out ({model['window_hours']} h)",
            "granules",
            "acknowledged",
        ],
        rows,
        "tasks-table",
    )
    return f'<section id="queue"><h2>Queue</h2>{head}{svg}{table}</section>'


def mirror_section(model: dict) -> str:
    """GINA answering or not (since when), the last mirror runs."""
    gina = model["mirror"]["gina"]
    if gina["answering"] is None:
        state = '<p id="gina" class="note">no mirror run recorded yet</p>'
    elif gina["answering"]:
        state = f'<p id="gina" class="ok">GINA answering (last run {when(gina["last_run"])})</p>'
    else:
        state = (
            f'<p id="gina" class="bad">GINA NOT answering since {when(gina["failing_since"])}'
            f" (last run {when(gina['last_run'])})</p>"
        )
    rows = [
        f'<tr><td>{when(r["finished"])}</td><td class="num">{r["found"]}</td>'
        f'<td class="num">{r["fetched"]}</td>'
        f'<td class="num {"bad" if r["failed"] else ""}">{r["failed"]}</td>'
        f'<td class="num">{r["megabytes"]:.1f}</td><td class="num">{r["mb_per_s"]:.1f}</td>'
        f'<td class="bad">{escape(", ".join(r["listing_failed"]))}</td></tr>'
        for r in model["mirror"]["runs"]
    ]
    table = _table(
        ["finished", "found", "fetched", "failed", "MB", "MB/s", "no listing"], rows, "mirror-table"
    )
    predicted = predicted_table(model["predicted_passes"])
    return f'<section id="mirror"><h2>Mirror</h2>{state}{table}{predicted}</section>'


def predicted_table(predicted: dict) -> str:
    """The next passes over the antenna, as the mirror predicted them from the TLEs."""
    if not predicted["available"]:
        return f'<p id="predicted" class="note">Next passes: {escape(predicted["why"] or "–")}</p>'
    rows = [
        f"<tr><td>{escape(p['name'])}</td><td>{when(p['rise'])}</td><td>{when(p['set'])}</td>"
        f'<td class="num">{p["max_elevation_degrees"]:.0f}°</td></tr>'
        for p in predicted["passes"]
    ]
    table = _table(["satellite", "rises", "sets", "max elevation"], rows, "predicted-table")
    return f"<h2>Next passes (predicted)</h2>{table}"


def programs_section(model: dict) -> str:
    """supervisord's programs: state, uptime, restarts in the last day."""
    info = model["programs"]
    if info["error"]:
        return (
            f'<section id="programs"><h2>Programs</h2><p class="bad">{escape(info["error"])}'
            "</p></section>"
        )
    rows = [
        f"<tr><td>{escape(p['name'])}</td>"
        f'<td class="{"ok" if p["state"] == "RUNNING" else "bad"}">{escape(p["state"])}</td>'
        f'<td class="num">{ago(p["uptime_seconds"])}</td>'
        f'<td class="num {"warn" if p["restarts_24h"] else ""}">{p["restarts_24h"]}</td></tr>'
        for p in info["list"]
    ]
    table = _table(["program", "state", "uptime", "restarts (24 h)"], rows, "programs-table")
    return f'<section id="programs"><h2>Programs</h2>{table}</section>'


def disk_section(model: dict) -> str:
    """Disk use of the base directory against what the retention needs."""
    disk = model["disk"]
    if disk is None:
        return '<section id="disk"><h2>Disk</h2><p class="note">not measured yet</p></section>'
    svg = charts.bar(
        "disk-bar",
        "disk use",
        disk["used_bytes"],
        disk["used_bytes"] + disk["free_bytes"],
        disk["needed_bytes"],
    )
    if disk["retention_days"] is None:
        retention = "VIIRS_RETENTION unset: nothing is ever deleted"
        css = "warn"
    else:
        need = display.size(disk["needed_bytes"])
        css = "ok" if disk["fits"] else "bad"
        retention = (
            f"{disk['retention_days']} days of retention need ~{need} at 36 GB/day"
            f"{'' if disk['fits'] else ': MORE THAN THE DISK HOLDS'}"
        )
    return (
        f'<section id="disk"><h2>Disk</h2>{svg}<p>{display.size(disk["used_bytes"])} used, '
        f"{display.size(disk['free_bytes'])} free (~{disk['days_held']} days held at the last "
        f'24 h\'s volume, {display.size(disk["bytes_last_24h"])}); <span class="{css}">'
        f"{retention}</span>; measured {when(disk['sampled'])}</p></section>"
    )


def files_section(model: dict) -> str:
    """The newest files: orbit, segment, start, arrival, delay, age."""
    newest = model["delays"][-FILES_SHOWN:][::-1]
    now = epoch_of(model["generated"])
    rows = [
        f"<tr><td>{escape(platform)}</td><td>{escape(name[:5])}</td>"
        f'<td class="num">{escape(name.split("_b")[1][:5]) if "_b" in name else ""}</td>'
        f"<td>{when(iso(start))}</td><td>{when(iso(arrival))}</td>"
        f'<td class="num">{minutes(arrival - start)}</td>'
        f'<td class="num">{ago(now - arrival)}</td></tr>'
        for name, platform, start, arrival in newest
    ]
    table = _table(
        ["satellite", "segment", "orbit", "granule start", "arrived", "delay", "age"],
        rows,
        "files-table",
    )
    return f'<section id="files" class="wide"><h2>Newest {len(newest)} files</h2>{table}</section>'


def render(model: dict) -> str:
    """The whole page."""
    links = " ".join(
        f'<a href="?hours={h}" class="{"on" if h == model["window_hours"] else ""}">'
        f"{h if h < 48 else h // 24}{' h' if h < 48 else ' d'}</a>"
        for h in WINDOWS
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        "<title>VIIRS collector status</title>"
        f"<style>{CSS}</style></head><body>"
        f'<header><h1>VIIRS collector</h1><span id="generated">as of {when(model["generated"])}'
        f'</span><span class="windows">window: {links}</span>'
        f'<span class="dim">refreshes every {REFRESH_SECONDS} s · all times UTC · '
        '<a href="api/status">JSON</a> · <a href="metrics">metrics</a></span></header><main>'
        + satellites_section(model)
        + delay_section(model)
        + passes_section(model)
        + queue_section(model)
        + mirror_section(model)
        + programs_section(model)
        + disk_section(model)
        + files_section(model)
        + "</main></body></html>"
    )
