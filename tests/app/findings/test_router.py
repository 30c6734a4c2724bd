"""Findings API: filters, keyset pages, roles, ack and snooze, the series behind a finding."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.auth.service import Role
from app.deps import request_now
from app.findings.series import MAX_POINTS
from app.models import ApiKey, Finding
from tests.factories.findings import T0, create_finding, create_minute_rollups, create_node

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.fixture
def api(client: TestClient) -> TestClient:
    cast(FastAPI, client.app).dependency_overrides[request_now] = lambda: NOW
    return client


def _key(session: Session, role: Role = Role.VIEWER, name: str | None = None) -> dict[str, str]:
    secret = auth_service.create_api_key(session, name=name or f"{role} key", role=role).secret
    # A refused request rolls the session back to its last commit (a savepoint in tests):
    # commit the rows made so far so that they outlive a 4xx.
    session.commit()
    return {"Authorization": f"Bearer {secret}"}


def _list(api: TestClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    r = api.get("/api/v1/findings", params=params, headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


class TestList:
    def test_newest_first_with_cost_and_links(self, api: TestClient, session: Session) -> None:
        node, gpus = create_node(session)
        older = create_finding(session, node=node, gpu=gpus[0], started_at=T0, resolved=True)
        newer = create_finding(
            session,
            node=node,
            gpu=gpus[1],
            kind="data_starvation",
            started_at=T0 + timedelta(hours=1),
            minutes=90,
            owner="job-42",
            cost_per_hour="3.456",
            cost_so_far="5.125",
        )
        body = _list(api, _key(session))
        assert body["total"] == 2
        assert [i["id"] for i in body["items"]] == [newer.id, older.id]
        item = body["items"][0]
        assert item["kind"] == "data_starvation"
        assert item["state"] == "open"
        assert (item["node"], item["gpu_uuid"], item["gpu_index"]) == ("node-a", gpus[1].uuid, 1)
        assert (item["team"], item["owner"]) == ("ml", "job-42")
        assert item["cost_per_hour"] == "3.46"  # minor unit, half-even
        assert item["cost_so_far"] == "5.12"
        assert (item["currency"], item["cost_source"]) == ("USD", "price_book")
        assert item["duration_seconds"] == 90 * 60
        assert item["resolved_at"] is None
        assert item["links"] == {
            "self": f"/api/v1/findings/{newer.id}",
            "page": f"/findings/{newer.id}",
        }
        assert (item["acked"], item["snoozed"]) == (False, False)
        resolved = body["items"][1]
        assert resolved["state"] == "resolved"
        assert resolved["duration_seconds"] == 30 * 60
        assert datetime.fromisoformat(resolved["resolved_at"]) == T0 + timedelta(minutes=30)

    def test_unpriced_finding_has_no_money_and_no_team(
        self, api: TestClient, session: Session
    ) -> None:
        node, _ = create_node(session)
        create_finding(
            session,
            node=node,
            kind="stale_agent",
            team="",
            cost_per_hour=None,
            cost_so_far=None,
            currency=None,
            cost_source="unpriced",
        )
        (item,) = _list(api, _key(session))["items"]
        assert (item["gpu_uuid"], item["gpu_index"], item["team"]) == (None, None, None)
        assert (item["cost_per_hour"], item["cost_so_far"], item["currency"]) == (None, None, None)

    def test_filters(self, api: TestClient, session: Session) -> None:
        a, a_gpus = create_node(session, name="node-a")
        b, b_gpus = create_node(session, name="node-b")
        idle = create_finding(session, node=a, gpu=a_gpus[0], team="ml", started_at=T0)
        starved = create_finding(
            session,
            node=a,
            gpu=a_gpus[1],
            kind="data_starvation",
            team="vision",
            started_at=T0 + timedelta(days=1),
        )
        done = create_finding(
            session, node=b, gpu=b_gpus[0], team="ml", started_at=T0 - timedelta(days=2),
            minutes=60, resolved=True,
        )  # fmt: skip
        headers = _key(session)

        def ids(**params: Any) -> set[int]:
            return {i["id"] for i in _list(api, headers, **params)["items"]}

        assert ids(kind="data_starvation") == {starved.id}
        assert ids(state="open") == {idle.id, starved.id}
        assert ids(state="resolved") == {done.id}
        assert ids(team="ml") == {idle.id, done.id}
        assert ids(node="node-b") == {done.id}
        assert ids(gpu=a_gpus[1].uuid) == {starved.id}
        assert ids(kind="idle_allocated", node="node-a") == {idle.id}
        assert ids(node="nowhere") == set()
        # Active in the window: begun before 'to', not resolved before 'from'.
        assert ids(**{"from": "2026-12-01", "to": "2026-12-01"}) == {idle.id}
        assert ids(**{"from": "2026-12-02T00:00:00+00:00"}) == {idle.id, starved.id}
        assert ids(**{"to": "2026-11-29T08:30:00Z"}) == {done.id}
        assert ids(**{"from": "2026-11-29T08:30:00+00:00", "to": "2026-11-29T08:31:00Z"}) == {
            done.id
        }
        assert ids(**{"from": "2026-11-29T09:00:00Z", "to": "2026-11-30"}) == set()
        assert _list(api, headers, team="ml")["total"] == 2

    def test_window_in_a_time_zone(self, api: TestClient, session: Session) -> None:
        node, gpus = create_node(session)
        # 2026-12-01 20:00 UTC is 2026-12-02 05:00 in Tokyo.
        f = create_finding(
            session, node=node, gpu=gpus[0], started_at=T0 + timedelta(hours=12), resolved=True
        )
        headers = _key(session)

        def ids(tz: str, day: str) -> list[int]:
            page = _list(api, headers, tz=tz, **{"from": day, "to": day})
            return [i["id"] for i in page["items"]]

        assert ids("UTC", "2026-12-01") == [f.id]
        assert ids("Asia/Tokyo", "2026-12-01") == []
        assert ids("Asia/Tokyo", "2026-12-02") == [f.id]
        r = api.get("/api/v1/findings", params={"tz": "Mars/Olympus"}, headers=headers)
        assert (r.status_code, r.json()["error"]) == (400, "bad_period")

    def test_bad_window_and_cursor(self, api: TestClient, session: Session) -> None:
        headers = _key(session)
        r = api.get(
            "/api/v1/findings",
            params={"from": "2026-12-02T00:00:00Z", "to": "2026-12-01T00:00:00Z"},
            headers=headers,
        )
        assert (r.status_code, r.json()["error"]) == (400, "bad_period")
        r = api.get("/api/v1/findings", params={"from": "2026-12-02T00:00:00"}, headers=headers)
        assert (r.status_code, r.json()["error"]) == (400, "bad_period")  # no offset
        r = api.get("/api/v1/findings", params={"cursor": "not-a-cursor"}, headers=headers)
        assert (r.status_code, r.json()["error"]) == (400, "bad_cursor")
        r = api.get("/api/v1/findings", params={"limit": 501}, headers=headers)
        assert r.status_code == 422
        r = api.get("/api/v1/findings", params={"state": "closed"}, headers=headers)
        assert r.status_code == 422


class TestPages:
    def test_pages_are_stable_while_findings_open(self, api: TestClient, session: Session) -> None:
        node, gpus = create_node(session, gpus=1)
        # Seven findings, three of them opened in the same minute: the id breaks the tie.
        starts = [T0 + timedelta(hours=h) for h in (0, 1, 2, 2, 2, 3, 4)]
        made = [
            create_finding(session, node=node, gpu=gpus[0], started_at=s, resolved=True)
            for s in starts
        ]
        expected = [f.id for f in sorted(made, key=lambda f: (f.opened_at, f.id), reverse=True)]
        headers = _key(session)

        first = _list(api, headers, limit=3)
        assert first["total"] == 7
        assert first["limit"] == 3
        assert first["next_cursor"]
        assert first["next"].startswith("/api/v1/findings?")
        assert "limit=3" in first["next"]
        seen = [i["id"] for i in first["items"]]
        # A newer finding opens between two page reads: it must not shift the later pages.
        late = create_finding(session, node=node, gpu=gpus[0], started_at=T0 + timedelta(days=1))
        page = first
        while page["next"] is not None:
            r = api.get(page["next"], headers=headers)
            assert r.status_code == 200, r.text
            page = r.json()
            assert len(page["items"]) <= 3
            seen += [i["id"] for i in page["items"]]
        assert seen == expected
        assert page["total"] == 8
        assert page["next_cursor"] is None
        assert _list(api, headers, limit=1)["items"][0]["id"] == late.id

    def test_default_limit_is_fifty(self, api: TestClient, session: Session) -> None:
        node, gpus = create_node(session, gpus=1)
        for k in range(51):
            create_finding(
                session, node=node, gpu=gpus[0], started_at=T0 + timedelta(hours=k), resolved=True
            )
        body = _list(api, _key(session))
        assert (len(body["items"]), body["total"], body["limit"]) == (50, 51, 50)
        assert body["next_cursor"] is not None


class TestRoles:
    @pytest.mark.parametrize(
        "path",
        ["/api/v1/findings", "/api/v1/findings/{id}"],
    )
    def test_reading_needs_a_key(self, api: TestClient, session: Session, path: str) -> None:
        node, gpus = create_node(session)
        f = create_finding(session, node=node, gpu=gpus[0])
        session.commit()
        url = path.format(id=f.id)
        assert api.get(url).status_code == 401
        assert api.get(url, headers={"Authorization": "Bearer gplk_wrong"}).status_code == 401
        for role in Role:
            assert api.get(url, headers=_key(session, role)).status_code == 200, role

    @pytest.mark.parametrize(
        ("role", "status"),
        [(Role.VIEWER, 403), (Role.FINANCE, 403), (Role.SRE, 200), (Role.ADMIN, 200)],
    )
    def test_acting_needs_sre_or_admin(
        self, api: TestClient, session: Session, role: Role, status: int
    ) -> None:
        node, gpus = create_node(session)
        f = create_finding(session, node=node, gpu=gpus[0])
        headers = _key(session, role)
        ack = api.post(f"/api/v1/findings/{f.id}/ack", headers=headers)
        assert ack.status_code == status, ack.text
        until = (NOW + timedelta(hours=1)).isoformat()
        snooze = api.post(f"/api/v1/findings/{f.id}/snooze", json={"until": until}, headers=headers)
        assert snooze.status_code == status, snooze.text
        if status == 403:
            assert ack.json()["error"] == "forbidden"
            session.refresh(f)
            assert (f.acked_at, f.snoozed_until) == (None, None)

    def test_acting_without_a_key(self, api: TestClient, session: Session) -> None:
        node, gpus = create_node(session)
        f = create_finding(session, node=node, gpu=gpus[0])
        assert api.post(f"/api/v1/findings/{f.id}/ack").status_code == 401
        r = api.post(f"/api/v1/findings/{f.id}/snooze", json={"until": "2027-01-01T00:00:00Z"})
        assert r.status_code == 401


class TestActions:
    def test_ack_records_who_and_when(self, api: TestClient, session: Session) -> None:
        node, gpus = create_node(session)
        f = create_finding(session, node=node, gpu=gpus[0])
        headers = _key(session, Role.SRE, name="alice on call")
        secret = headers["Authorization"].removeprefix("Bearer ")
        key_id = session.scalars(select(ApiKey.id).where(ApiKey.name == "alice on call")).one()
        r = api.post(f"/api/v1/findings/{f.id}/ack", headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["acked"] is True
        assert datetime.fromisoformat(body["acked_at"]) == NOW
        assert body["acked_by"] == f"alice on call (API key {key_id})"
        stored = session.get(Finding, f.id)
        assert stored is not None
        assert (stored.acked_at, stored.acked_by) == (NOW, f"alice on call (API key {key_id})")
        assert secret not in (stored.acked_by or "")
        # Acking again, later and by someone else, keeps the first acknowledgement.
        cast(FastAPI, api.app).dependency_overrides[request_now] = lambda: NOW + timedelta(hours=1)
        again = api.post(f"/api/v1/findings/{f.id}/ack", headers=_key(session, Role.ADMIN, "bob"))
        assert again.status_code == 200
        assert again.json()["acked_by"] == f"alice on call (API key {key_id})"
        assert datetime.fromisoformat(again.json()["acked_at"]) == NOW

    def test_snooze_records_until(self, api: TestClient, session: Session) -> None:
        node, gpus = create_node(session)
        f = create_finding(session, node=node, gpu=gpus[0])
        headers = _key(session, Role.SRE)
        r = api.post(
            f"/api/v1/findings/{f.id}/snooze",
            json={"until": "2026-12-03T14:00:00+01:00"},  # 13:00 UTC, an hour after NOW
            headers=headers,
        )
        assert r.status_code == 200, r.text
        assert r.json()["snoozed"] is True
        until = datetime(2026, 12, 3, 13, 0, tzinfo=UTC)
        assert datetime.fromisoformat(r.json()["snoozed_until"]) == until
        session.refresh(f)
        assert f.snoozed_until == until
        assert f.acked_at is None  # snoozing is not acknowledging
        item = _list(api, _key(session))["items"][0]
        assert (item["snoozed"], item["snoozed_until"]) == (True, r.json()["snoozed_until"])
        # Once the time has passed the finding reads as not snoozed.
        cast(FastAPI, api.app).dependency_overrides[request_now] = lambda: until
        assert _list(api, _key(session))["items"][0]["snoozed"] is False

    @pytest.mark.parametrize(
        "until",
        [
            "2026-12-03T11:59:00Z",  # the past
            "2026-12-03T12:00:00+00:00",  # the request's now is not the future
            "2026-12-03T13:00:00",  # no offset
            "tomorrow",
        ],
    )
    def test_snooze_refuses_past_and_naive_times(
        self, api: TestClient, session: Session, until: str
    ) -> None:
        node, gpus = create_node(session)
        f = create_finding(session, node=node, gpu=gpus[0])
        r = api.post(
            f"/api/v1/findings/{f.id}/snooze",
            json={"until": until},
            headers=_key(session, Role.SRE),
        )
        assert r.status_code == 422, r.text
        assert r.json()["error"] == "invalid_payload"
        assert [d["field"] for d in r.json()["detail"]] == ["body.until"]
        session.refresh(f)
        assert f.snoozed_until is None

    def test_snooze_needs_a_body(self, api: TestClient, session: Session) -> None:
        node, gpus = create_node(session)
        f = create_finding(session, node=node, gpu=gpus[0])
        r = api.post(f"/api/v1/findings/{f.id}/snooze", headers=_key(session, Role.SRE))
        assert r.status_code == 422

    @pytest.mark.parametrize(
        ("method", "path", "body"),
        [
            ("GET", "/api/v1/findings/999999", None),
            ("POST", "/api/v1/findings/999999/ack", None),
            ("POST", "/api/v1/findings/999999/snooze", {"until": "2027-01-01T00:00:00Z"}),
        ],
    )
    def test_unknown_finding_is_404(
        self, api: TestClient, session: Session, method: str, path: str, body: Any
    ) -> None:
        r = api.request(method, path, json=body, headers=_key(session, Role.ADMIN))
        assert r.status_code == 404, r.text
        assert r.json()["error"] == "finding_not_found"
        assert "999999" in r.json()["message"]


class TestDetail:
    def test_evidence_and_series_around_the_episode(
        self, api: TestClient, session: Session
    ) -> None:
        node, gpus = create_node(session)
        start = T0 + timedelta(hours=2)
        f = create_finding(
            session,
            node=node,
            gpu=gpus[0],
            started_at=start,
            minutes=60,
            resolved=True,
            evidence={"utilization_mean": 0.4, "minutes": 60},
        )
        # Rollups from 2 h before to 2 h after: the answer keeps the episode plus 30 minutes
        # (a quarter of it, at least 30 min) on each side.
        create_minute_rollups(
            session, node=node, gpu=gpus[0], start=start - timedelta(hours=2), minutes=300
        )
        r = api.get(f"/api/v1/findings/{f.id}", headers=_key(session))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["evidence"] == {"utilization_mean": 0.4, "minutes": 60}
        assert body["id"] == f.id
        series = body["series"]
        assert (series["resolution"], series["step_seconds"]) == ("minute", 60)
        assert datetime.fromisoformat(series["start"]) == start - timedelta(minutes=30)
        assert datetime.fromisoformat(series["end"]) == start + timedelta(minutes=90)
        gpu, host = series["gpu"], series["host"]
        assert len(gpu) == len(host) == 120
        assert datetime.fromisoformat(gpu[0]["ts"]) == start - timedelta(minutes=30)
        assert datetime.fromisoformat(gpu[-1]["ts"]) == start + timedelta(minutes=89)
        # Minute 90 of the rollups (index 90: utilization 90 %, 190 W, 90 GiB) opens the series.
        assert gpu[0] == {
            "ts": gpu[0]["ts"],
            "utilization": 90.0,
            "power_watts": 190.0,
            "memory_used_bytes": 90 * 2**30,
        }
        assert host[0]["iowait_ratio"] == 0.5
        assert host[0]["io_pressure_some_ratio"] == 0.25
        assert host[0]["disk_read_bytes_per_second"] == 1_000_000.0

    def test_long_episode_is_capped(self, api: TestClient, session: Session) -> None:
        node, gpus = create_node(session)
        minutes = 2 * 24 * 60
        f = create_finding(session, node=node, gpu=gpus[0], started_at=T0, minutes=minutes)
        create_minute_rollups(session, node=node, gpu=gpus[0], start=T0, minutes=minutes)
        # Open, and NOW is well after its last minute: the window runs 6 h past it.
        body = api.get(f"/api/v1/findings/{f.id}", headers=_key(session)).json()
        series = body["series"]
        assert series["resolution"] == "minute"
        assert 0 < len(series["gpu"]) <= MAX_POINTS
        assert 0 < len(series["host"]) <= MAX_POINTS
        step = series["step_seconds"]
        assert step > 60
        assert step % 60 == 0
        stamps = [datetime.fromisoformat(p["ts"]) for p in series["gpu"]]
        assert stamps == sorted(stamps)
        assert all((b - a).total_seconds() == step for a, b in itertools.pairwise(stamps))
        # Merged points: power is the mean, memory the max of the step's minutes (minute i of
        # the rollups has 100 + i W and i GiB).
        point = series["gpu"][5]
        first = int((datetime.fromisoformat(point["ts"]) - T0).total_seconds() // 60)
        last = first + step // 60 - 1
        assert point["memory_used_bytes"] == last * 2**30
        assert point["power_watts"] == pytest.approx(100 + (first + last) / 2)

    def test_node_finding_has_host_series_only(self, api: TestClient, session: Session) -> None:
        node, gpus = create_node(session)
        f = create_finding(session, node=node, kind="stale_agent", started_at=T0)
        create_minute_rollups(session, node=node, gpu=gpus[0], start=T0, minutes=30)
        series = api.get(f"/api/v1/findings/{f.id}", headers=_key(session)).json()["series"]
        assert series["gpu"] == []
        assert len(series["host"]) == 30
