"""What a load run shows while it goes and leaves behind: the live console, the JSON-lines
feed and the ``--report DIR`` files.

Theory of operation
-------------------
The load engine owns one :class:`~tunnelswarm.fleet.stats.RunStats` with the run's
totals and hands it, once a second, to whichever of these it runs:

* :class:`~tunnelswarm.report.live.LiveConsole` — one screen on a terminal that
  refreshes each second (one compact line per update when the stream is not a terminal,
  e.g. a CI log; nothing with ``enabled=False`` for ``--quiet``).
* :class:`~tunnelswarm.report.live.JsonLinesSink` — ``--json-lines``: one JSON object per
  update on stdout, the newest complete second plus running totals.
* :class:`~tunnelswarm.report.files.ReportDir` — ``--report DIR``: ``summary.json``,
  ``timeseries.csv``, ``timeline.jsonl``, ``syslog.log`` and ``report.html``, written as
  the run goes so that a crash or an interrupt leaves a complete report of what was
  measured up to the last checkpoint.
* :func:`~tunnelswarm.report.html.render_html` — the self-contained HTML report (plotly
  charts with plotly.js inlined: it opens offline).

Each module's docstring has the details. None of them reads a clock of its own except
:class:`~tunnelswarm.report.files.ReportDir`, which spaces out its costly files by wall
time (its clock can be replaced).
"""

from __future__ import annotations

from tunnelswarm.report.files import ReportDir
from tunnelswarm.report.html import render_html
from tunnelswarm.report.live import JsonLinesSink, LiveConsole, second_row

__all__ = ["JsonLinesSink", "LiveConsole", "ReportDir", "render_html", "second_row"]
