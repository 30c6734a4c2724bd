"""AWS user tags reach the team rules under their own name ("user_team" / "user:team" → team)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.billing import service
from app.models import BillingLineItem
from bench import billing_samples as samples


def _tags(session: Session) -> list[dict[str, str]]:
    return [json.loads(t) for t in session.scalars(select(BillingLineItem.tags)) if t]


def test_cur2_tag_map_keys_lose_the_user_prefix(session: Session, tmp_path: Path) -> None:
    samples.write_cur2(tmp_path / "cur2.csv", 6)
    service.import_file(session, path=tmp_path / "cur2.csv")
    tags = _tags(session)
    assert len(tags) == 6
    assert all(set(t) == {"team"} for t in tags)


def test_athena_style_tag_columns_are_read(session: Session, tmp_path: Path) -> None:
    """CUR 2.0 exported with one column per tag ("resource_tags_user_team") used to drop them."""
    samples.write_cur2(tmp_path / "cur2.csv", 4)
    with (tmp_path / "cur2.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    at = rows[0].index("resource_tags")
    rows[0][at] = "resource_tags_user_team"
    for row in rows[1:]:
        row[at] = json.loads(row[at])["user_team"]
    with (tmp_path / "athena.csv").open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    service.import_file(session, path=tmp_path / "athena.csv")
    tags = _tags(session)
    assert [t["team"] for t in tags] == [row[at] for row in rows[1:]]
