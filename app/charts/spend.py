"""GPU spend per day, stacked by group (pure: rows in, figure out)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from decimal import Decimal

import plotly.graph_objects as go

from app.kit.money import minor_unit
from app.reports.types import DailyCost

# Tableau 20: the ten strong colours first, then their light partners, so that the largest groups
# differ most. More groups than this fold into one "other" trace.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip
MAX_SERIES = len(PALETTE)


def group_label(key: tuple[str, ...]) -> str:
    return " / ".join(key) or "(none)"


def spend_figure(days: Sequence[DailyCost], *, currency: str, title: str) -> go.Figure:
    """A stacked bar chart of ``currency`` spend per day, one trace per group (largest first)."""
    series: dict[str, dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for d in days:
        if d.currency == currency:
            series[group_label(d.key)][d.day] += d.cost
    ranked = sorted(series, key=lambda name: -sum(series[name].values(), Decimal(0)))
    if len(ranked) > MAX_SERIES:
        other: dict[date, Decimal] = defaultdict(Decimal)
        for name in ranked[MAX_SERIES - 1 :]:
            for day, cost in series[name].items():
                other[day] += cost
        folded = f"other ({len(ranked) - MAX_SERIES + 1} groups)"
        ranked = [*ranked[: MAX_SERIES - 1], folded]
        series[folded] = other
    digits = minor_unit(currency)
    fig = go.Figure()
    for i, name in enumerate(ranked):
        points = sorted(series[name].items())
        fig.add_trace(
            go.Bar(
                x=[day.isoformat() for day, _ in points],
                y=[float(cost) for _, cost in points],
                name=name,
                marker_color=PALETTE[i % len(PALETTE)],
                hovertemplate=(
                    f"%{{fullData.name}}<br>%{{x|%Y-%m-%d}}: %{{y:,.{digits}f}} {currency}"
                    "<extra></extra>"
                ),
            )
        )
    fig.update_layout(
        title=title,
        barmode="stack",
        xaxis={"title": "day", "type": "date", "tickformat": "%b %d"},
        yaxis={"title": f"GPU spend ({currency})", "tickformat": f",.{digits}f"},
        legend={"orientation": "v", "traceorder": "normal"},
        hovermode="closest",
        margin={"l": 70, "r": 20, "t": 50, "b": 50},
        template="plotly_white",
    )
    return fig
