"""What people do to a finding: acknowledge it, snooze it until a time."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from app.findings.queries import FindingNotFound, load_finding
from app.findings.schemas import FindingRead
from app.kit.timebuckets import utc
from app.kit.validation import PayloadInvalid
from app.models import ApiKey, Finding

ACTOR_MAX = 200  # Finding.acked_by


def actor(key: ApiKey) -> str:
    """Who acted, as stored: the key's name and id (never its secret or its hash)."""
    suffix = f" (API key {key.id})"
    return key.name[: ACTOR_MAX - len(suffix)] + suffix


def _finding(session: Session, finding_id: int) -> Finding:
    finding = session.get(Finding, finding_id)
    if finding is None:
        raise FindingNotFound(f"no finding {finding_id}")
    return finding


def ack_finding(session: Session, *, finding_id: int, key: ApiKey, now: datetime) -> FindingRead:
    """Acknowledge a finding; the first acknowledgement stands (acking again changes nothing)."""
    finding = _finding(session, finding_id)
    if finding.acked_at is None:
        finding.acked_at = utc(now)
        finding.acked_by = actor(key)
        finding.updated_at = utc(now)
        session.flush()
    return load_finding(session, finding_id=finding_id, now=now)


def snooze_finding(
    session: Session, *, finding_id: int, until: datetime, now: datetime
) -> FindingRead:
    """Snooze a finding until ``until``, which must be after ``now``; a later snooze replaces it."""
    finding = _finding(session, finding_id)
    if utc(until) <= utc(now):
        raise PayloadInvalid(
            "body.until: must be in the future",
            detail=[
                {
                    "field": "body.until",  # as FastAPI names the body's fields
                    "message": f"must be after {utc(now).isoformat()}",
                    "type": "value_error",
                }
            ],
        )
    finding.snoozed_until = utc(until)
    finding.updated_at = utc(now)
    session.flush()
    return load_finding(session, finding_id=finding_id, now=now)
