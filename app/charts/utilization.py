"""Utilization over time, one line per GPU (pure: rows in, figure out)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

import plotly.graph_objects as go

from app.nodes.service import UtilizationPoint


def utilization_figure(points: Sequence[UtilizationPoint], *, title: str) -> go.Figure:
    """A line chart of GPU utilization (percent) per GPU."""
    series: dict[str, tuple[list[datetime], list[float | None]]] = defaultdict(lambda: ([], []))
    for p in points:
        xs, ys = series[p.gpu]
        xs.append(p.ts)
        ys.append(p.utilization)
    fig = go.Figure()
    for name, (xs, ys) in series.items():
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=name))
    fig.update_layout(
        title=title,
        xaxis_title="time (UTC)",
        yaxis={"title": "GPU utilization (%)", "range": [0, 105]},
        legend={"orientation": "v"},
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        template="plotly_white",
        uirevision="keep",  # keeps zoom and hidden traces across refreshes
    )
    return fig
