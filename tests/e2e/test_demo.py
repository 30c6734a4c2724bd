"""``gpuledger demo`` on a fresh data directory: a fleet of simulated GPUs shows up."""

from __future__ import annotations

import time
import urllib.error

from tests.e2e.conftest import Demo


def _wait_for_gpus(demo: Demo, minimum: int) -> dict:
    body: dict = {"items": []}
    for _ in range(300):
        try:
            body = demo.get_json("/api/v1/gpus?limit=1000")
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
            continue
        if sum(1 for g in body["items"] if g["utilization"] is not None) >= minimum:
            break
        time.sleep(0.2)
    return body


def test_demo_fleet_reports(demo: Demo) -> None:
    body = _wait_for_gpus(demo, 12)
    with_samples = [g for g in body["items"] if g["utilization"] is not None]
    assert len(with_samples) >= 12
    nodes = {g["node"] for g in with_samples}
    assert len(nodes) >= 3
    # The scenarios differ: some GPUs are busy, some idle.
    assert max(g["utilization"] for g in with_samples) > 80
    assert min(g["utilization"] for g in with_samples) < 5
    assert (demo.data_dir / "gpuledger.db").exists()


def test_demo_key_file_is_private(demo: Demo) -> None:
    assert (demo.data_dir / "demo-admin-key").stat().st_mode & 0o077 == 0


def test_demo_bill_prices_the_fleet(demo: Demo) -> None:
    """The demo imports a bill for three nodes; the fourth is estimated from the price book."""
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal
    from urllib.parse import urlencode

    _wait_for_gpus(demo, 12)
    report: dict = {}
    for _ in range(300):
        now = datetime.now(UTC)
        query = urlencode(
            {
                "from": (now - timedelta(hours=3)).isoformat(),
                "to": now.isoformat(),
                "group_by": "node",
            }
        )
        report = demo.get_json(f"/api/v1/costs?{query}")
        if Decimal(report["totals"]["billed_cost"]) > 0 and len(report["groups"]) >= 4:
            break
        time.sleep(0.2)
    assert (demo.data_dir / "demo-bill-focus.csv").exists()
    groups = report["groups"]
    assert len(groups) >= 4
    assert Decimal(report["totals"]["billed_cost"]) > 0
    assert Decimal(groups["demo-train-01"]["billed_cost"]) > 0
    assert Decimal(groups["demo-mixed-01"]["billed_cost"]) == 0
    assert Decimal(groups["demo-mixed-01"]["estimated_cost"]) > 0
    # The demo bill's discount is the estimate's ratio, and the API says so.
    pricing = {p["node"]: p for p in report["pricing"]}
    assert "0.62" in pricing["demo-mixed-01"]["detail"]
    assert sum(Decimal(g["cost"]) for g in groups.values()) == Decimal(report["total"])
    # The idle node's money is spent on nothing.
    idle = groups["demo-idle-01"]
    assert Decimal(idle["utilized_cost"]) <= Decimal("0.05") * Decimal(idle["cost"])


def test_demo_lists_findings_of_the_four_main_kinds(demo: Demo) -> None:
    """A fresh demo's history holds an idle held GPU, idle free ones, a starved node and an
    energy-wasting GPU: the findings API lists each kind once the first passes have run."""
    _wait_for_gpus(demo, 12)
    wanted = {"idle_allocated", "idle_unallocated", "data_starvation", "energy_waste"}
    kinds: set[str] = set()
    for _ in range(300):  # the embedded scheduler evaluates every minute
        body = demo.get_json("/api/v1/findings?limit=500")
        kinds = {f["kind"] for f in body["items"]}
        if wanted <= kinds:
            break
        time.sleep(1)
    assert wanted <= kinds
    held = [f for f in body["items"] if f["kind"] == "idle_allocated"]
    # demo-idle-01 holds two idle GPUs: one with an idle process, one with no process at all.
    assert len([f for f in held if f["node"] == "demo-idle-01"]) == 2
    assert all(f["cost_per_hour"] is not None for f in held)
