"""The load run's HTML report: one self-contained file that opens offline.

Theory of operation
-------------------
:func:`render_html` turns what the run measured into one HTML page; it does no IO but read
plotly.js from the installed ``plotly`` package (once per process). The charts are plotly
figures (built as plain figure dicts, not validated: cheap enough to redraw during the
run) drawn by plotly.js, which is inlined once in the page's head — no CDN, no network:
the file opens in a browser without a connection. plotly.js is about 4.8 MB (plotly
7.1 bundles plotly.js 4.1), so the file weighs about 4.9 MB plus its data, roughly 1 MB
per hour of run and up to about 1 MB of capped tables.

The page, top to bottom:

* the title (the run's ``name`` or ``scenario`` from ``extra``), its state (``running``
  at a checkpoint, ``completed``, ``interrupted``) and the thresholds' verdict;
* **run**: ``extra`` as a table (strings as they are, anything else as JSON);
* **thresholds**: one row per :class:`~tunnelswarm.fleet.thresholds.ThresholdResult`
  (condition, observed, ok/FAILED, note);
* **summary**: the headline metrics (sessions, setups, DTLS ratio, setup percentiles and
  per phase, errors and reconnects by cause, late starts, round trips, bytes), times in
  ms, ratios in %; every metric in a folded table below;
* **charts**, from the 1 s time series (:meth:`RunStats.timeseries_rows`): sessions up
  and DTLS up over time; sessions started and setups completed per second; setup time
  p50/p90/p99 (and max) per second, from the per-second ``setup_total`` histograms
  (attributed to each setup's scheduled start); errors and reconnects per second stacked
  by cause; the timeline's events by kind (hover for the text); faults injected
  (``extra["faults"]``) shaded on every time chart;
* **outages**: the clients that lost their tunnel (:mod:`tunnelswarm.fleet.faults`),
  one row of bars per client (the :data:`OUTAGE_CLIENTS` with the most time down),
  coloured by how each outage ended, and the outages in numbers;
* **timeline**: the events as a table; **syslog**: the headend's syslog (when the mock
  ran in-process), in a ``<pre>``.

Every text from the run (extra, events, syslog, causes, notes) is HTML-escaped, so a
``<script>`` in a syslog line stays text; figure data goes through plotly's JSON encoder,
whose ``<``, ``>`` and ``/`` escapes keep it inside its ``<script>``. The timeline and the
syslog are capped at :data:`HTML_ROWS` lines each: the first :data:`HTML_HEAD` and the
newest ones, with a note saying how many were left out there (the ``.jsonl`` and ``.log``
files have them all). A caller that already dropped lines (as
:class:`~tunnelswarm.report.files.ReportDir` does, keeping only what the page shows)
passes the count as ``events_omitted`` / ``syslog_omitted``: they were between the first
:data:`HTML_HEAD` lines and the rest.
"""

from __future__ import annotations

import functools
import html
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Final, TypeVar

import plotly.io as pio
import plotly.offline

from tunnelswarm.fleet.faults import Outage
from tunnelswarm.fleet.stats import RunStats
from tunnelswarm.fleet.thresholds import ThresholdResult
from tunnelswarm.report._json import dumps
from tunnelswarm.scenario.run import TimelineEntry

__all__ = ["HTML_HEAD", "HTML_ROWS", "render_html", "warm_up"]

#: timeline events and syslog lines the page shows at most, each
HTML_ROWS: Final = 3000
#: of which the first ones; the rest are the newest
HTML_HEAD: Final = 1000
#: clients the outage chart draws at most (those with the longest outages)
OUTAGE_CLIENTS: Final = 300
#: outage ends → bar colours
_ENDED_COLOURS: Final = {
    "reconnect": "#2a9d8f",
    "new session": "#457b9d",
    "lost": "#c0262d",
    "unrecovered": "#e76f51",
}
#: distinct event kinds drawn as their own trace; the rest are drawn as "other"
_MAX_KINDS: Final = 16
_CHART_HEIGHT: Final = "360px"
_PLOTLY_CONFIG: Final = {"responsive": True, "displaylogo": False}

T = TypeVar("T")


@functools.cache
def _plotly_js() -> str:
    """plotly.js from the installed package, safe inside a ``<script>`` element."""
    js: str = plotly.offline.get_plotlyjs()
    return js.replace("</script", "<\\/script")


def warm_up() -> None:
    """Load plotly.js and plotly's JSON encoder now (~0.1 s once per process) rather than
    at the first :func:`render_html` of a running load."""
    _plotly_js()
    _chart("warm-up", [], {})


def _cap(items: Sequence[T], omitted: int) -> tuple[list[T], int, list[T]]:
    """``(head, left out, tail)`` of at most :data:`HTML_ROWS` items."""
    if len(items) <= HTML_ROWS:
        return list(items[:HTML_HEAD]), omitted, list(items[HTML_HEAD:])
    tail = HTML_ROWS - HTML_HEAD
    return (
        list(items[:HTML_HEAD]),
        omitted + len(items) - HTML_ROWS,
        list(items[len(items) - tail :]),
    )


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


# ---------------------------------------------------------------------- values
def _dur(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "-"
    ms = seconds * 1000
    if ms < 10:
        return f"{ms:.2f} ms"
    if ms < 10_000:
        return f"{ms:.1f} ms"
    return f"{seconds:.2f} s"


def _number(v: float | None) -> str:
    if v is None or math.isnan(v):
        return "-"
    if float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:,.4g}"


_TIME_SUFFIXES: Final = ("_mean", "_stdev", "_min", "_max")
_RATIOS: Final = frozenset({"dtls_ratio", "ping_loss", "setup_success_ratio"})


def _metric_text(name: str, v: float) -> str:
    """A metric as a person reads it: durations in ms, ratios in %."""
    base = name.split("[", 1)[0]
    if base in _RATIOS:
        return "-" if math.isnan(v) else f"{v * 100:.2f} %"
    last = base.rsplit("_", 1)[-1]
    is_time = base.endswith(_TIME_SUFFIXES) or (last.startswith("p") and last[1:2].isdigit())
    if is_time and not base.startswith(("bytes", "packets")):
        return _dur(v)
    return _number(v)


# ---------------------------------------------------------------------- tables
def _table(header: Sequence[str] | None, rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """An HTML table (no header row for None); the cells are already HTML."""
    head = "" if header is None else "".join(f"<th>{h}</th>" for h in header)
    thead = f"<thead><tr>{head}</tr></thead>" if head else ""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    klass = f' class="{cls}"' if cls else ""
    return f"<table{klass}>{thead}<tbody>{body}</tbody></table>"


def _run_table(extra: Mapping[str, object]) -> str:
    if not extra:
        return "<p class='note'>no run details</p>"
    rows = [
        (f"<code>{_e(k)}</code>", _e(v if isinstance(v, str) else dumps(v)))
        for k, v in extra.items()
    ]
    return _table(None, rows, "kv")


def _thresholds_table(results: Sequence[ThresholdResult]) -> str:
    if not results:
        return "<p class='note'>no thresholds were given</p>"
    rows = [
        (
            f"<code>{_e(r.condition)}</code>",
            _e(r.observed_text),
            "<span class='ok'>ok</span>" if r.passed else "<span class='bad'>FAILED</span>",
            _e(r.note),
        )
        for r in results
    ]
    held = sum(r.passed for r in results)
    return _table(("threshold", "observed", "result", "note"), rows) + (
        f"<p>{held} of {len(results)} threshold(s) held</p>"
    )


#: (label, metric) of the headline table
_HEADLINE: Final = (
    ("sessions started", "sessions_started"),
    ("setups completed", "setups_completed"),
    ("setup success", "setup_success_ratio"),
    ("sessions up (peak)", "sessions_up"),
    ("sessions up (at the end)", "sessions_up_last"),
    ("DTLS ratio (session-seconds)", "dtls_ratio"),
    ("DTLS fallbacks", "dtls_fallbacks"),
    ("setup p50", "setup_p50"),
    ("setup p90", "setup_p90"),
    ("setup p99", "setup_p99"),
    ("setup p99.9", "setup_p99.9"),
    ("setup max", "setup_max"),
    ("TCP connect p99", "setup_tcp_p99"),
    ("TLS handshake p99", "setup_tls_p99"),
    ("authentication p99", "setup_auth_p99"),
    ("CONNECT p99", "setup_connect_p99"),
    ("DTLS handshake p99", "setup_dtls_p99"),
    ("errors", "errors"),
    ("reconnects", "reconnects"),
    ("late starts", "late_starts"),
    ("missed starts", "missed_starts"),
    ("start lateness p99", "start_lateness_p99"),
    ("DPD round trip p99", "dpd_rtt_p99"),
    ("ping round trip p50", "ping_rtt_p50"),
    ("ping round trip p99", "ping_rtt_p99"),
    ("ping loss", "ping_loss"),
    ("bytes sent", "bytes_tx"),
    ("bytes received", "bytes_rx"),
)


def _summary_tables(stats: RunStats, metrics: Mapping[str, float]) -> str:
    rows = [
        (_e(label), _e(_metric_text(name, metrics[name])))
        for label, name in _HEADLINE
        if name in metrics
    ]
    parts = [_table(None, rows, "kv")]
    for family, title in (("errors", "errors by cause"), ("reconnects", "reconnects by cause")):
        counts = stats.families.get(family, {})
        items = sorted(((k, n) for k, n in counts.items() if n), key=lambda kv: (-kv[1], kv[0]))
        if items:
            parts.append(f"<h3>{_e(title)}</h3>")
            parts.append(_table(("cause", "count"), ((_e(k), _number(n)) for k, n in items)))
    every = _table(
        ("metric", "value", "raw"),
        (
            (
                f"<code>{_e(k)}</code>",
                _e(_metric_text(k, v)),
                _e("-" if math.isnan(v) else repr(v)),
            )
            for k, v in sorted(metrics.items())
        ),
    )
    parts.append(f"<details><summary>every metric ({len(metrics)})</summary>{every}</details>")
    return "".join(parts)


def _timeline_table(events: Sequence[TimelineEntry], omitted: int) -> str:
    if not events and not omitted:
        return "<p class='note'>no events</p>"
    head, left_out, tail = _cap(events, omitted)

    def rows(entries: Sequence[TimelineEntry]) -> list[tuple[str, ...]]:
        return [(f"{e.t:.3f}", _e(e.source), _e(e.kind), _e(e.text)) for e in entries]

    out = rows(head)
    if left_out:
        note = f"<em>{left_out:,} events left out here; timeline.jsonl has them all</em>"
        out.append(("…", "", "", note))
    out += rows(tail)
    return _table(("t (s)", "source", "kind", "text"), out, "events")


def _syslog_block(lines: Sequence[str], omitted: int) -> str:
    if not lines and not omitted:
        return (
            "<p class='note'>no syslog: the headend's syslog is captured when the mock ASA"
            " runs in-process</p>"
        )
    head, left_out, tail = _cap(lines, omitted)
    text = "\n".join(_e(line.rstrip("\n")) for line in head)
    if left_out:
        text += f"\n<em>… {left_out:,} lines left out here; syslog.log has them all …</em>"
    if tail:
        text += "\n" + "\n".join(_e(line.rstrip("\n")) for line in tail)
    return f"<pre class='syslog'>{text}</pre>"


# ---------------------------------------------------------------------- charts
def _clean(values: Iterable[float]) -> list[float | None]:
    return [None if math.isnan(v) else v for v in values]


def _layout(title: str, ytitle: str, **more: object) -> dict[str, object]:
    layout: dict[str, object] = {
        "title": {"text": title},
        "xaxis": {"title": {"text": "seconds since the start"}, "rangemode": "tozero"},
        "yaxis": {"title": {"text": ytitle}, "rangemode": "tozero"},
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
        "legend": {"orientation": "h", "y": -0.2},
        "hovermode": "x unified",
    }
    layout.update(more)
    return layout


def _chart(div_id: str, data: list[dict[str, object]], layout: dict[str, object]) -> str:
    fig = {"data": data, "layout": layout}
    div: str = pio.to_html(
        fig,
        config=dict(_PLOTLY_CONFIG),
        include_plotlyjs=False,
        full_html=False,
        validate=False,
        div_id=div_id,
        default_height=_CHART_HEIGHT,
    )
    return f"<div class='chart'>{div}</div>"


def _line(name: str, x: list[float], y: list[float | None], **more: object) -> dict[str, object]:
    trace: dict[str, object] = {"type": "scatter", "mode": "lines", "name": name, "x": x, "y": y}
    trace.update(more)
    return trace


def _fault_shapes(faults: object) -> list[dict[str, object]]:
    """Shaded spans (a blackout, a pause, a restart's time down) and lines (a cut) for
    the faults of ``extra["faults"]`` (dicts with ``kind``, ``at``, ``duration``)."""
    shapes: list[dict[str, object]] = []
    if not isinstance(faults, list | tuple):
        return shapes
    for f in faults:
        if not isinstance(f, Mapping):
            continue
        try:
            at, dur = float(f["at"]), float(f.get("duration", 0.0))
        except (KeyError, TypeError, ValueError):
            continue
        common = {"xref": "x", "yref": "paper", "y0": 0, "y1": 1, "layer": "below"}
        if dur > 0:
            shapes.append(
                {"type": "rect", "x0": at, "x1": at + dur, "fillcolor": "#f4a261"}
                | {"opacity": 0.25, "line": {"width": 0}}
                | common
            )
        else:
            shapes.append(
                {"type": "line", "x0": at, "x1": at, "line": {"color": "#e76f51", "dash": "dash"}}
                | common
            )
    return shapes


def _outage_section(outages: Sequence[Outage], omitted: int, stats: RunStats) -> str:
    """Each client's outages as bars on a timeline (the longest-hit clients first,
    at most :data:`OUTAGE_CLIENTS`), and the outages in numbers."""
    if not outages and not omitted:
        return "<p class='note'>no client lost its tunnel or its DTLS channel</p>"
    rows: list[tuple[str, str]] = []
    for channel, what, hist in (("tunnel", "tunnel", "outage"), ("dtls", "DTLS", "dtls_outage")):
        these = [o for o in outages if o.channel == channel]
        by_end: dict[str, int] = {}
        for o in these:
            by_end[o.ended_by] = by_end.get(o.ended_by, 0) + 1
        rows += [
            (f"{what} outages", _number(len(these))),
            (f"{what}: clients hit", _number(len({o.slot for o in these}))),
            *((f"{what}: ended by {k}", _number(n)) for k, n in sorted(by_end.items())),
        ]
        h = stats.histograms.get(hist)
        if h is not None and h.count:
            p50, p99 = h.percentiles([50.0, 99.0])
            rows += [
                (f"{what}: recovered in, p50", _dur(p50 / 1e6)),
                (f"{what}: recovered in, p99", _dur(p99 / 1e6)),
                (f"{what}: recovered in, max", _dur(h.max / 1e6)),
            ]
    parts = [_table(None, ((_e(k), _e(v)) for k, v in rows), "kv")]
    if omitted:
        parts.append(
            f"<p class='note'>{omitted:,} outages left out of the chart; outages.csv has"
            " them all</p>"
        )
    total: dict[int, float] = {}
    for o in outages:
        total[o.slot] = total.get(o.slot, 0.0) + o.seconds * (1.0 if o.channel == "tunnel" else 0.1)
    shown = sorted(total, key=lambda s: (-total[s], s))[:OUTAGE_CLIENTS]
    order = sorted(shown)
    keep = set(shown)
    data: list[dict[str, object]] = []
    dtls = [o for o in outages if o.channel == "dtls" and o.slot in keep]
    if dtls:  # drawn first, thinner: under the tunnel's own outages
        data.append(
            {
                "type": "bar",
                "orientation": "h",
                "name": "DTLS down (data over CSTP)",
                "base": [o.start for o in dtls],
                "x": [max(o.seconds, 0.05) for o in dtls],
                "y": [f"client {o.slot}" for o in dtls],
                "width": 0.35,
                "marker": {"color": "#f4a261"},
                "text": [
                    f"client {o.slot} (session {o.client}): DTLS down, {o.cause},"
                    f" {o.seconds:.2f} s, {o.ended_by}" + (f" — {o.detail}" if o.detail else "")
                    for o in dtls
                ],
                "hoverinfo": "text",
                "textposition": "none",
            }
        )
    for ended, colour in _ENDED_COLOURS.items():
        these = [
            o for o in outages if o.channel == "tunnel" and o.ended_by == ended and o.slot in keep
        ]
        if not these:
            continue
        data.append(
            {
                "type": "bar",
                "orientation": "h",
                "name": ended,
                "base": [o.start for o in these],
                "x": [max(o.seconds, 0.05) for o in these],
                "y": [f"client {o.slot}" for o in these],
                "marker": {"color": colour},
                "text": [
                    f"client {o.slot} (session {o.client}): tunnel down, {o.cause},"
                    f" {o.seconds:.2f} s,"
                    f" {o.ended_by}" + (f" — {o.detail}" if o.detail else "")
                    for o in these
                ],
                "hoverinfo": "text",
                "textposition": "none",
            }
        )
    if len(total) > len(shown):
        parts.append(
            f"<p class='note'>the chart shows the {len(shown)} clients with the most time"
            f" down of {len(total):,}</p>"
        )
    layout = _layout("Outages per client", "", barmode="overlay", hovermode="closest")
    layout["yaxis"] = {
        "type": "category",
        "automargin": True,
        "categoryorder": "array",
        "categoryarray": [f"client {s}" for s in order],
    }
    layout["height"] = max(300, min(2400, 18 * len(order) + 120))
    parts.append(_chart("chart-outages", data, layout))
    return "".join(parts)


def _charts(
    rows: list[dict[str, float]],
    events: Sequence[TimelineEntry],
    shapes: list[dict[str, object]] | None = None,
) -> str:
    x = [r["second"] for r in rows]
    marks: dict[str, object] = {"shapes": shapes} if shapes else {}
    down = any(r.get("sessions_down") for r in rows)

    def col(name: str) -> list[float | None]:
        return _clean(r.get(name, math.nan) for r in rows)

    def ms(name: str) -> list[float | None]:
        return [None if v is None else v * 1000 for v in col(name)]

    parts = [
        _chart(
            "chart-sessions",
            [
                _line("sessions up", x, col("sessions_up"), line={"shape": "hv"}),
                _line("DTLS up", x, col("dtls_up"), line={"shape": "hv"}),
                *(
                    [_line("clients in an outage", x, col("sessions_down"), line={"shape": "hv"})]
                    if down
                    else []
                ),
            ],
            _layout("Sessions up", "sessions", **marks),
        ),
        _chart(
            "chart-rate",
            [
                {"type": "bar", "name": "setups completed/s", "x": x, "y": col("setups_completed")},
                _line("sessions started/s", x, col("sessions_started")),
            ],
            _layout("Setup rate", "per second", **marks),
        ),
        _chart(
            "chart-latency",
            [
                _line("p50", x, ms("setup_p50")),
                _line("p90", x, ms("setup_p90")),
                _line("p99", x, ms("setup_p99")),
                _line("max", x, ms("setup_max"), line={"dash": "dot"}),
            ],
            _layout(
                "Setup time per second (by scheduled start)",
                "ms",
                yaxis={"title": {"text": "ms"}, "type": "log"},
                **marks,
            ),
        ),
    ]
    keyed = sorted(
        {k for r in rows for k in r if k.startswith(("errors[", "reconnects["))},
        key=lambda k: (not k.startswith("errors"), k),
    )
    bars: list[dict[str, object]] = [
        {
            "type": "bar",
            "name": ("error: " if k.startswith("errors") else "reconnect: ")
            + k.split("[", 1)[1][:-1],
            "x": x,
            "y": col(k),
        }
        for k in keyed
    ]
    note: dict[str, object] = {}
    if not bars:
        note = {
            "annotations": [
                {"text": "no errors, no reconnects", "showarrow": False, "x": 0.5, "y": 0.5}
                | {"xref": "paper", "yref": "paper"}
            ]
        }
    parts.append(
        _chart(
            "chart-errors",
            bars,
            _layout(
                "Errors and reconnects per second, by cause",
                "count",
                barmode="stack",
                **note,
                **marks,
            ),
        )
    )
    parts.append(_events_chart(events))
    return "".join(parts)


def _events_chart(events: Sequence[TimelineEntry]) -> str:
    head, _left_out, tail = _cap(events, 0)
    shown = head + tail
    kinds: dict[str, list[TimelineEntry]] = {}
    for e in shown:
        kinds.setdefault(e.kind or e.source, []).append(e)
    names = sorted(kinds, key=lambda k: -len(kinds[k]))
    if len(names) > _MAX_KINDS:
        other = [e for k in names[_MAX_KINDS - 1 :] for e in kinds.pop(k)]
        names = [*names[: _MAX_KINDS - 1], "other"]
        kinds["other"] = other
    data: list[dict[str, object]] = [
        {
            "type": "scatter",
            "mode": "markers",
            "name": kind,
            "x": [e.t for e in kinds[kind]],
            "y": [kind] * len(kinds[kind]),
            "text": [f"{e.source}: {e.text}" for e in kinds[kind]],
            "hoverinfo": "x+text",
            "marker": {"symbol": "line-ns-open", "size": 14},
        }
        for kind in names
    ]
    layout = _layout("Timeline events by kind", "", hovermode="closest", showlegend=False)
    layout["yaxis"] = {"type": "category", "automargin": True}
    return _chart("chart-events", data, layout)


# ---------------------------------------------------------------------- the page
_CSS: Final = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;
max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.5em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ddd;padding:.25em .6em;
text-align:left;vertical-align:top}th{background:#f4f4f4}table.kv td:first-child{color:#555}
table.events td:first-child{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#17803d;font-weight:bold}.bad{color:#c0262d;font-weight:bold}
.state{display:inline-block;padding:.1em .5em;border-radius:.3em;background:#eee}
.state.interrupted,.state.running{background:#fff3cd}.state.completed{background:#d9f2e0}
.note{color:#666}.chart{margin:1em 0}
pre.syslog{background:#f8f8f8;border:1px solid #ddd;padding:.6em;overflow-x:auto;
max-height:40em;font-size:.85em}
"""


def render_html(
    stats: RunStats,
    events: Sequence[TimelineEntry],
    syslog: Sequence[str],
    thresholds: Sequence[ThresholdResult],
    extra: Mapping[str, object],
    *,
    state: str = "completed",
    events_omitted: int = 0,
    syslog_omitted: int = 0,
    percentiles: Iterable[float | tuple[str, float]] = (),
    outages: Sequence[Outage] = (),
    outages_omitted: int = 0,
) -> str:
    """The report page (see the module docstring). ``state``: ``running``, ``completed`` or
    ``interrupted``; ``percentiles``: extra ones for the metrics, as
    :meth:`RunStats.metrics` takes them; ``outages``: the clients' outages
    (``outages_omitted`` more were dropped by the caller)."""
    metrics = stats.metrics(percentiles)
    rows = stats.timeseries_rows()
    name = str(extra.get("name") or extra.get("scenario") or "load run")
    seconds = len(rows)
    if thresholds:
        held = sum(t.passed for t in thresholds)
        verdict = (
            f"<span class='ok'>all {held} threshold(s) held</span>"
            if held == len(thresholds)
            else f"<span class='bad'>{len(thresholds) - held} of {len(thresholds)}"
            " threshold(s) FAILED</span>"
        )
    else:
        verdict = "no thresholds"
    written = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    running_note = (
        "<p class='note'>written at a checkpoint while the run was going; a newer one"
        " replaces it until the run ends</p>"
        if state == "running"
        else ""
    )
    return "".join(
        [
            "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>",
            "<meta name='viewport' content='width=device-width, initial-scale=1'>",
            f"<title>tunnelswarm — {_e(name)}</title><style>{_CSS}</style>",
            "<script type='text/javascript'>window.PlotlyConfig = {MathJaxConfig: 'local'};",
            "</script>\n<script type='text/javascript'>",
            _plotly_js(),
            "</script></head><body>",
            f"<h1>tunnelswarm load report — {_e(name)}</h1>",
            f"<p><span class='state {_e(state)}'>{_e(state)}</span> · {verdict} ·",
            f" {seconds} s measured · written {_e(written)}</p>",
            running_note,
            "<h2>Run</h2>",
            _run_table(extra),
            "<h2>Thresholds</h2>",
            _thresholds_table(thresholds),
            "<h2>Summary</h2>",
            _summary_tables(stats, metrics),
            "<h2>Charts</h2>",
            (
                _charts(rows, events, _fault_shapes(extra.get("faults")))
                if rows
                else "<p class='note'>no time series yet</p>"
            ),
            "<h2>Outages</h2>",
            _outage_section(outages, outages_omitted, stats),
            "<h2>Timeline</h2>",
            _timeline_table(events, events_omitted),
            "<h2>Headend syslog</h2>",
            _syslog_block(syslog, syslog_omitted),
            "</body></html>\n",
        ]
    )
