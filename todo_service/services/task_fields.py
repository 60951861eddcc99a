"""The task's fields, in one place.

`TASK_FIELDS` lists what a task stores, in the order of its representation
(API.md, Tasks and Version 1.1). Everything else is made from it: the columns
that SELECT and RETURNING read (`SELECTED_COLUMNS`; `INSERTED_COLUMNS` for a
task just inserted, which has no tags yet), the fields a client may
write (`WRITABLE_FIELDS`: create, replace and patch), the INSERT's columns
(`COLUMN_FIELDS`), the JSON payload (`task_payload`) and the columns `flask
seed` fills. A new column takes the model, a migration, the schemas and one
line here.

`tags` is a field of the task but not a column of `tasks`: it lives in
`tags`/`task_tags` (services/tags.py writes it) and is read by a subquery
(`db.dialects.task_tag_list`).

Every statement returns a task as the database's text (ids and timestamps
formatted by the database, see `db.dialects`), so every endpoint answers
the same text for the same instant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Uuid

from ..db.dialects import UTCDateTime, no_tags, rfc3339_text, task_tag_list, uuid_text
from ..db.models import Task


@dataclass(frozen=True)
class TaskField:
    name: str
    writable: bool = False  # set by the client; otherwise by the service
    column: bool = True  # a column of `tasks`; `tags` is not

    def selected(self, *, just_inserted: bool = False) -> ColumnElement[Any]:
        """How statements read the field. Ids and timestamps come back as
        text: they are only ever serialised, and making UUID and datetime
        objects of them (four per row) would be wasted work.

        `just_inserted`: as the INSERT of a new task returns it. Its tags are
        written after that statement, so it has none yet, and the subquery
        that reads them would cost the database work for nothing (a tenth
        of the INSERT's CPU)."""
        if self.name == "tags":
            return (no_tags() if just_inserted else task_tag_list()).label(self.name)
        column = Task.__table__.c[self.name]
        if isinstance(column.type, Uuid):
            return uuid_text(column).label(self.name)
        if isinstance(column.type, UTCDateTime):
            return rfc3339_text(column).label(self.name)
        return column.label(self.name)


TASK_FIELDS = (
    TaskField("id"),
    TaskField("user_id"),
    TaskField("title", writable=True),
    TaskField("description", writable=True),
    TaskField("completed", writable=True),
    TaskField("priority", writable=True),
    TaskField("due_at", writable=True),
    TaskField("tags", writable=True, column=False),
    TaskField("created_at"),
    TaskField("updated_at"),
)

STORED_FIELDS = tuple(field.name for field in TASK_FIELDS)
COLUMN_FIELDS = tuple(field.name for field in TASK_FIELDS if field.column)
WRITABLE_FIELDS = tuple(field.name for field in TASK_FIELDS if field.writable)
WRITABLE_COLUMNS = tuple(name for name in WRITABLE_FIELDS if name in COLUMN_FIELDS)
SELECTED_COLUMNS = tuple(field.selected() for field in TASK_FIELDS)
INSERTED_COLUMNS = tuple(field.selected(just_inserted=True) for field in TASK_FIELDS)


def task_payload(row: Mapping[str, Any]) -> dict[str, Any]:
    """The task representation (API.md): the stored fields, and `status`,
    another view of `completed`."""
    payload = {name: row[name] for name in STORED_FIELDS}
    payload["status"] = "completed" if row["completed"] else "pending"
    return payload


_COMPLETED_AT = STORED_FIELDS.index("completed")


def task_payloads(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    """`task_payload` of each row of a statement read as tuples, whose
    columns start with `SELECTED_COLUMNS` (a list page: the columns after
    them, the page's version and counts, are left out)."""
    if tuple(columns[: len(STORED_FIELDS)]) != STORED_FIELDS:
        raise ValueError(f"columns do not start with the task's fields: {columns}")
    payloads = []
    for row in rows:
        # Stops at the last task field: the page's own columns follow.
        payload = dict(zip(STORED_FIELDS, row, strict=False))
        payload["status"] = "completed" if row[_COMPLETED_AT] else "pending"
        payloads.append(payload)
    return payloads
