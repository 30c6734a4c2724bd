"""The daily spend chart: stacked bars, one trace per group, money in the hover."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from app.charts.spend import MAX_SERIES, PALETTE, spend_figure
from app.reports.types import DailyCost


def _days(groups: int, days: int = 3, currency: str = "USD") -> list[DailyCost]:
    return [
        DailyCost(date(2026, 11, 1) + timedelta(days=d), (f"team-{g}", "train"), currency,
                  Decimal(g + 1) + Decimal("0.25"))
        for g in range(groups) for d in range(days)
    ]  # fmt: skip


def test_stacked_bars_per_group_largest_first() -> None:
    fig = spend_figure(_days(3) + _days(2, currency="EUR"), currency="USD", title="GPU spend")
    assert fig.layout.barmode == "stack"
    assert fig.layout.title.text == "GPU spend"
    assert [t.name for t in fig.data] == ["team-2 / train", "team-1 / train", "team-0 / train"]
    bars = fig.data[0]
    assert bars.type == "bar"
    assert list(bars.x) == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert list(bars.y) == [3.25, 3.25, 3.25]
    assert "%{y:,.2f} USD" in bars.hovertemplate
    assert fig.layout.yaxis.title.text == "GPU spend (USD)"


def test_colours_are_distinct_and_extra_groups_fold_into_other() -> None:
    fig = spend_figure(_days(20), currency="USD", title="t")
    colours = [t.marker.color for t in fig.data]
    assert len(colours) == len(set(colours)) == 20 == len(PALETTE)
    fig = spend_figure(_days(25), currency="USD", title="t")
    assert len(fig.data) == MAX_SERIES
    assert fig.data[-1].name == "other (6 groups)"
    # team-0 .. team-5 are the smallest: 1.25 + 2.25 + ... + 6.25 per day.
    assert fig.data[-1].y[0] == sum(g + 1.25 for g in range(6))


def test_yen_has_no_decimals_and_empty_is_fine() -> None:
    fig = spend_figure(_days(1, currency="JPY"), currency="JPY", title="t")
    assert "%{y:,.0f} JPY" in fig.data[0].hovertemplate
    assert len(spend_figure([], currency="USD", title="t").data) == 0
