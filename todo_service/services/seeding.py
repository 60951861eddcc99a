"""Demo data for trying the API (`flask seed`), written in bulk.

Idempotent: demo users are found by email (demo1@example.com, ...) and each
one's tasks are topped up to the number asked for, never added twice. A run is
one transaction, and runs exclude each other (PostgreSQL: an advisory lock;
SQLite: `BEGIN IMMEDIATE`), so two runs at once cannot both top up.

Realistic: every field of a task (task_fields.py) gets a spread, so that a
seeded database shows every feature of the API: about a third completed,
mostly medium priority with some high and some low, half without a due date
and the rest due in the past (overdue, where not completed) or in the coming
weeks, and 0 to 3 tags in a given order from a small vocabulary, some tags
far more common than others (`tags` gets one row per user and tag name,
`task_tags` the links; the per-tag counts are the triggers' work).

Fast: no ORM object per row (README, Performance, has the timings). On
PostgreSQL the tasks go through `COPY ... FROM STDIN` fed by a CSV stream made
on the fly, so the server writes rows while Python makes the next ones; their
tag links follow in a second COPY, one pair per round of up to
`_COPY_ROUND` tasks (memory stays bounded). On SQLite, batched executemany
inserts. Triggers stay on (COPY fires statement-level triggers like any
INSERT: once per COPY)."""

from __future__ import annotations

import itertools
import os
import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite

from ..db.connections import transaction
from ..db.dialects import utcnow
from ..db.models import Tag, Task, TaskTag, User
from ..extensions import db
from .task_fields import COLUMN_FIELDS

DEMO_PASSWORD = "demo-password"  # noqa: S105 (the published demo login)
DEMO_DOMAIN = "example.com"  # reserved for examples (RFC 2606): never a real inbox

# Tasks created over the past six months; some updated up to two weeks later.
_CREATED_SPAN_US = 183 * 24 * 3600 * 1_000_000
_UPDATE_SPAN_US = 14 * 24 * 3600 * 1_000_000
_COMPLETED_SHARE = 1 / 3
_DESCRIBED_SHARE = 0.4
_UPDATED_PENDING_SHARE = 0.25
# Due dates, in whole minutes: half the tasks have none; of the rest, two in
# five fell due between creation and now, three in five fall due within
# `_DUE_AHEAD_US` from an hour from now.
_DUE_PAST_SHARE = 0.2
_DUE_FUTURE_SHARE = 0.3
_DUE_AHEAD_US = 60 * 24 * 3600 * 1_000_000
_HOUR_US = 3600 * 1_000_000
_MINUTE_US = 60 * 1_000_000
# 13 medium, 4 high, 3 low in 20.
_PRIORITY_POOL = ("medium",) * 13 + ("high",) * 4 + ("low",) * 3

_SEED_LOCK_KEY = 7_261_946_376  # pg_advisory_xact_lock: one seeding run at a time
_IN_CHUNK = 1000  # ids per IN (...) list
_SQLITE_BATCH = 5000  # rows per executemany
_COPY_CHUNK = 2000  # rows per piece of the COPY stream
_COPY_ROUND = 100_000  # tasks per COPY of tasks and COPY of their tag links
_ANALYZE_AFTER = 10_000  # fresh planner statistics after a big load (PostgreSQL)

# Every stored field of a task (task_fields.py): one the seeder does not fill
# is written as NULL.
_COPY_SQL = f"COPY tasks ({', '.join(COLUMN_FIELDS)}) FROM STDIN WITH (FORMAT csv)"
# One line of its CSV: a column the seeder does not fill is an unquoted empty
# field, which COPY reads as NULL.
_COPY_FILLED = {
    *("id", "user_id", "title", "description", "completed", "priority", "due_at"),
    *("created_at", "updated_at"),
}
_COPY_LINE = (
    ",".join(f"%({name})s" if name in _COPY_FILLED else "" for name in COLUMN_FIELDS) + "\n"
)
_COPY_TAGS_SQL = "COPY task_tags (task_id, tag_id, position) FROM STDIN WITH (FORMAT csv)"

Progress = Callable[[int], AbstractContextManager[Callable[[int], object]]]
"""Given the number of tasks to write, a context yielding `advance(n)`."""


@dataclass(frozen=True)
class SeedResult:
    users: int
    users_created: int
    tasks_created: int
    demo_email: str
    demo_password: str
    demo_login_works: bool  # False: demo1 existed with another password (left alone)


def demo_email(number: int) -> str:
    return f"demo{number}@{DEMO_DOMAIN}"


def seed(
    *,
    users: int,
    tasks_per_user: int,
    hash_password: Callable[[str], str],
    check_password: Callable[[str, str], bool],
    progress: Progress | None = None,
    rng: random.Random | None = None,
) -> SeedResult:
    """Make sure demo users 1..`users` exist, each with at least
    `tasks_per_user` tasks. The demo password is hashed once, and only when a
    user is missing: every demo user shares that hash."""
    rng = rng or random.Random()  # noqa: S311 (demo data, not secrets)
    progress = progress or _no_progress
    now = utcnow()
    emails = [demo_email(number) for number in range(1, users + 1)]
    with transaction(db.engine) as conn:  # one transaction: all or nothing
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SEED_LOCK_KEY})
        existing = _find_users(conn, emails)
        missing = [email for email in emails if email not in existing]
        created = _create_users(conn, missing, hash_password, now) if missing else {}
        counts = _task_counts(conn, [user_id for user_id, _ in existing.values()])
        owners = {**{email: user_id for email, (user_id, _) in existing.items()}, **created}
        plan = [(owners[email], tasks_per_user - counts.get(owners[email], 0)) for email in emails]
        plan = [(user_id, count) for user_id, count in plan if count > 0]
        total = sum(count for _, count in plan)
        if total:
            with progress(total) as advance:
                write = _copy_tasks if postgres else _insert_tasks
                write(conn, plan, rng, (now - _EPOCH) // _ONE_US, advance)
            if postgres and total >= _ANALYZE_AFTER:
                conn.execute(text("ANALYZE tasks, task_tags, tags"))
    first = emails[0]
    works = first in created or check_password(existing[first][1], DEMO_PASSWORD)
    return SeedResult(
        users=users,
        users_created=len(created),
        tasks_created=total,
        demo_email=first,
        demo_password=DEMO_PASSWORD,
        demo_login_works=works,
    )


# ------------------------------------------------------------------------ users


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _find_users(conn: Connection, emails: Sequence[str]) -> dict[str, tuple[uuid.UUID, str]]:
    """email -> (id, password hash) of those that exist."""
    found: dict[str, tuple[uuid.UUID, str]] = {}
    for chunk in _chunks(emails, _IN_CHUNK):
        rows = conn.execute(
            select(User.email, User.id, User.password_hash).where(User.email.in_(chunk))
        )
        found.update({row.email: (row.id, row.password_hash) for row in rows})
    return found


def _create_users(
    conn: Connection,
    emails: Sequence[str],
    hash_password: Callable[[str], str],
    now: datetime,
) -> dict[str, uuid.UUID]:
    password_hash = hash_password(DEMO_PASSWORD)  # argon2: ~0.1 s, so once for all
    ids = {email: uuid.uuid4() for email in emails}
    rows = [
        {
            "id": ids[email],
            "email": email,
            "name": f"Demo User {email.split('@')[0].removeprefix('demo')}",
            "password_hash": password_hash,
            "token_version": 0,
            "created_at": now,
            "updated_at": now,
        }
        for email in emails
    ]
    for chunk in _chunks(rows, _SQLITE_BATCH):
        conn.execute(insert(User), list(chunk))
    return ids


def _task_counts(conn: Connection, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    counts: dict[uuid.UUID, int] = {}
    for chunk in _chunks(user_ids, _IN_CHUNK):
        rows = conn.execute(
            select(Task.user_id, func.count()).where(Task.user_id.in_(chunk)).group_by(Task.user_id)
        )
        counts.update({user_id: int(count) for user_id, count in rows})
    return counts


# ------------------------------------------------------------------------ tasks

Plan = Sequence[tuple[uuid.UUID, int]]  # (user id, how many tasks to add)
# (id, title index, description index or -1, completed, created, updated,
#  priority, due or -1, tag vocabulary indexes in the task's order)
TaskRow = tuple[int, int, int, bool, int, int, str, int, tuple[int, ...]]
# (task id as CSV text or UUID, owner, tag vocabulary indexes)
TagLinks = list[tuple[Any, uuid.UUID, tuple[int, ...]]]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
# What uuid.UUID(version=4) does to an integer: version and variant bits.
_V4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_V4_SET = (0x4000 << 64) | (0x8000 << 48)


def _sorted_uuid4_ints(count: int) -> list[int]:
    data = os.urandom(16 * count)  # what uuid.uuid4() draws from
    return sorted(
        int.from_bytes(data[start : start + 16], "big") & _V4_CLEAR | _V4_SET
        for start in range(0, len(data), 16)
    )


def _task_rows(rng: random.Random, count: int, now_us: int) -> Iterator[TaskRow]:
    """`count` tasks of one user, oldest first (see `TaskRow`), ids as
    integers and times as microseconds since the epoch.

    `created_at` values are distinct (microsecond precision) over the past
    months; `updated_at` lies between `created_at` and now; a due date in the
    past lies after `created_at` (to the minute) and before now. The ids are
    random version-4 UUIDs, sorted and handed out oldest first: both indexes
    of the table (primary key; user_id, created_at, id) then fill in order,
    which makes COPY about twice as fast as with ids in random order.
    """
    ages = rng.sample(range(1, _CREATED_SPAN_US), count)
    ages.sort(reverse=True)
    random_float = rng.random
    titles, descriptions = len(_TITLES), len(_DESCRIPTIONS)
    priorities, tag_lists = len(_PRIORITY_POOL), len(_TAG_LISTS)
    for task_id, age in zip(_sorted_uuid4_ints(count), ages, strict=True):
        created = now_us - age
        completed = random_float() < _COMPLETED_SHARE
        updated = created
        if completed or random_float() < _UPDATED_PENDING_SHARE:
            updated += int(random_float() * min(age, _UPDATE_SPAN_US))
        description = (
            int(random_float() * descriptions) if random_float() < _DESCRIBED_SHARE else -1
        )
        due = -1
        draw = random_float()
        if draw < _DUE_PAST_SHARE:
            due = created + int(random_float() * age)
            due -= due % _MINUTE_US
        elif draw < _DUE_PAST_SHARE + _DUE_FUTURE_SHARE:
            due = now_us + _HOUR_US + int(random_float() * _DUE_AHEAD_US)
            due -= due % _MINUTE_US
        yield (
            task_id,
            int(random_float() * titles),
            description,
            completed,
            created,
            updated,
            _PRIORITY_POOL[int(random_float() * priorities)],
            due,
            _TAG_LISTS[int(random_float() * tag_lists)],
        )


def _plan_rows(plan: Plan, rng: random.Random, now_us: int) -> Iterator[tuple[uuid.UUID, TaskRow]]:
    for user_id, count in plan:
        for row in _task_rows(rng, count, now_us):
            yield user_id, row


def _datetime(microseconds: int) -> datetime:
    return _EPOCH + timedelta(microseconds=microseconds)


def _tag_ids(conn: Connection, links: TagLinks) -> dict[uuid.UUID, dict[int, int]]:
    """owner -> vocabulary index -> tag id, for every tag `links` uses; the
    tags missing are made (a user's own tag of the same name is reused)."""
    wanted: dict[uuid.UUID, set[int]] = {}
    for _, user_id, tags in links:
        wanted.setdefault(user_id, set()).update(tags)
    rows = [
        {"user_id": user_id, "name": _TAG_NAMES[index]}
        for user_id, indexes in wanted.items()
        for index in sorted(indexes)
    ]
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(Tag).on_conflict_do_nothing(index_elements=["user_id", "name"])
    for chunk in _chunks(rows, _SQLITE_BATCH):
        conn.execute(statement, list(chunk))
    ids: dict[uuid.UUID, dict[int, int]] = {}
    for chunk in _chunks(list(wanted), _IN_CHUNK):
        found = conn.execute(
            select(Tag.user_id, Tag.name, Tag.id).where(
                Tag.user_id.in_(chunk), Tag.name.in_(_TAG_NAMES)
            )
        )
        for user_id, name, tag_id in found:
            ids.setdefault(user_id, {})[_TAG_INDEX[name]] = tag_id
    return ids


def _insert_tasks(
    conn: Connection,
    plan: Plan,
    rng: random.Random,
    now_us: int,
    advance: Callable[[int], object],
) -> None:
    rows = _plan_rows(plan, rng, now_us)
    while round_ := list(itertools.islice(rows, _SQLITE_BATCH)):
        batch: list[dict[str, Any]] = []
        links: TagLinks = []
        for user_id, row in round_:
            task_id, title, description, completed, created, updated, priority, due, tags = row
            task_uuid = uuid.UUID(int=task_id)
            batch.append(
                {
                    "id": task_uuid,
                    "user_id": user_id,
                    "title": _TITLES[title],
                    "description": _DESCRIPTIONS[description] if description >= 0 else None,
                    "completed": completed,
                    "priority": priority,
                    "due_at": _datetime(due) if due >= 0 else None,
                    "created_at": _datetime(created),
                    "updated_at": _datetime(updated),
                }
            )
            if tags:
                links.append((task_uuid, user_id, tags))
        conn.execute(insert(Task), batch)
        if links:
            ids = _tag_ids(conn, links)
            conn.execute(
                insert(TaskTag),
                [
                    {"task_id": task_uuid, "tag_id": ids[user_id][tag], "position": position}
                    for task_uuid, user_id, tags in links
                    for position, tag in enumerate(tags)
                ],
            )
        advance(len(batch))


def _copy_tasks(
    conn: Connection,
    plan: Plan,
    rng: random.Random,
    now_us: int,
    advance: Callable[[int], object],
) -> None:
    def csv_pieces(round_: Iterator[tuple[uuid.UUID, TaskRow]], links: TagLinks) -> Iterator[str]:
        # Index -1 (no description) is the last entry: an unquoted empty
        # field, which COPY reads as NULL.
        titles, descriptions = _TITLES_CSV, (*_DESCRIPTIONS_CSV, "")
        owner, user = None, ""
        while batch := list(itertools.islice(round_, _COPY_CHUNK)):
            lines = []
            for user_id, row in batch:
                if user_id is not owner:
                    owner, user = user_id, user_id.hex
                task_id, title, description, completed, created, updated, priority, due, tags = row
                created_at = _datetime(created).isoformat()
                updated_at = created_at if updated == created else _datetime(updated).isoformat()
                task_hex = f"{task_id:032x}"
                fields = {
                    "id": task_hex,
                    "user_id": user,
                    "title": titles[title],
                    "description": descriptions[description],
                    "completed": "t" if completed else "f",
                    "priority": priority,
                    "due_at": _datetime(due).isoformat() if due >= 0 else "",
                    "created_at": created_at,
                    "updated_at": updated_at,
                }
                lines.append(_COPY_LINE % fields)
                if tags:
                    links.append((task_hex, user_id, tags))
            yield "".join(lines)
            advance(len(batch))

    def link_pieces(links: TagLinks, ids: dict[uuid.UUID, dict[int, int]]) -> Iterator[str]:
        for chunk in _chunks(links, _COPY_CHUNK):
            yield "".join(
                f"{task_hex},{ids[user_id][tag]},{position}\n"
                for task_hex, user_id, tags in chunk
                for position, tag in enumerate(tags)
            )

    rows = _plan_rows(plan, rng, now_us)
    # The driver's own connection, inside this transaction: psycopg2's COPY.
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        while (first := next(rows, None)) is not None:
            round_ = itertools.chain([first], itertools.islice(rows, _COPY_ROUND - 1))
            links: TagLinks = []
            cursor.copy_expert(_COPY_SQL, _TextStream(csv_pieces(round_, links)), size=1 << 16)
            if links:
                ids = _tag_ids(conn, links)
                cursor.copy_expert(
                    _COPY_TAGS_SQL, _TextStream(link_pieces(links, ids)), size=1 << 16
                )
    finally:
        cursor.close()


class _TextStream:
    """A `read(size)`-able view of an iterator of strings (what psycopg2's
    `copy_expert` reads from), so the data never sits in memory whole and the
    server writes rows while the next ones are being made."""

    def __init__(self, pieces: Iterator[str]) -> None:
        self._pieces = pieces
        self._current = ""
        self._position = 0

    def read(self, size: int = -1) -> str:
        while self._position >= len(self._current):
            piece = next(self._pieces, None)
            if piece is None:
                return ""
            self._current, self._position = piece, 0
        end = len(self._current) if size < 0 else self._position + size
        data = self._current[self._position : end]
        self._position += len(data)
        return data


def _no_progress(total: int) -> AbstractContextManager[Callable[[int], object]]:
    return nullcontext(lambda count: None)


def _csv_field(value: str) -> str:
    if value and not any(char in value for char in ',"\r\n'):
        return value
    return '"' + value.replace('"', '""') + '"'


# ---------------------------------------------------------------- the content

_FILLS = {
    "grocery": "milk|eggs|bread|coffee beans|apples|oat milk|rice|tomatoes|olive oil|cat food|"
    "batteries|dish soap|croissants|pasta",
    "person": "the dentist|Mum|the plumber|the bank|Alex|Priya|the landlord|Zoë|the accountant|"
    "Grandpa|the vet|José|the school office",
    "topic": "the invoice|next week's trip|the offsite|the contract renewal|the budget|"
    "the birthday party|the new logo|holiday dates",
    "doc": "the quarterly report|release notes for 2.4|a blog post draft|meeting minutes|"
    "the onboarding guide|a thank-you card|the project proposal|the API changelog",
    "booking": "flights to Lisbon|a table for Friday|a haircut|the car service|a hotel in Kyoto|"
    "train tickets to Berlin|the meeting room|a flu shot|a tennis court for Sunday",
    "bill": "the electricity bill|rent|the internet bill|the phone bill|the water bill|"
    "council tax|the gym membership",
    "place": "the kitchen|the garage|the fridge|the car|my desk|the bathroom|the balcony|the inbox",
    "thing": "the passport|the library books|the parcel|the drill|the umbrella|Alex's charger|"
    "the rental bike",
    "software": "the laptop|Python to 3.13|the phone|the router firmware|the CI runners|"
    "the staging database|npm packages",
    "event": "the team retro|Sam's farewell|the board meeting|the conference talk|"
    "the sprint demo|the family dinner|the workshop",
}
_TEMPLATES = (
    "Buy {grocery}|Call {person}|Email {person} about {topic}|Write {doc}|Book {booking}|"
    "Pay {bill}|Clean {place}|Return {thing}|Update {software}|Prepare slides for {event}|"
    "Plan {event}|Ask {person} about {topic}|Proofread {doc}|Pick up {thing}|"
    "Follow up with {person}|Review {doc}"
)
_PLAIN_TITLES = (
    "Water the plants|Take out the recycling|Go for a run|Meditate 10 minutes|"
    "Back up the photos|Renew car insurance|Cancel the unused subscription|Fix the leaking tap|"
    "Learn 20 Spanish words|Stretch after work"
)
_SENTENCES = (
    "Before Friday.|Not urgent, but do not forget.|Check the receipt first.|"
    "Ask about the discount.|Takes about 30 minutes.|Needs the printer.|"
    "Blocked until the reply comes in.|Second reminder!|Only if it is sunny.|"
    "See the shared notes for details.|Budget: about €50.|Bring the ID card.|"
    "Coordinate with the team first.|Use the new template.|Ask Zoë for the address.|"
    "Last time this took two hours.|Could be done on the train."
)
_LISTS = ("- milk\n- bread\n- eggs", "1. draft\n2. review\n3. send", "Steps:\n- back up\n- upgrade")


def _title_pool() -> tuple[str, ...]:
    """A fixed vocabulary of a few hundred titles (built once, at import)."""
    pick = random.Random(4)  # noqa: S311 (demo data, not secrets)
    fills = {name: values.split("|") for name, values in _FILLS.items()}
    titles = set(_PLAIN_TITLES.split("|"))
    for template in _TEMPLATES.split("|"):
        names = [part.split("}")[0] for part in template.split("{")[1:]]
        for _ in range(60):
            titles.add(template.format(**{name: pick.choice(fills[name]) for name in names}))
    for number in pick.sample(range(100, 10_000), 200):
        titles.add(f"{pick.choice(('Review pull request', 'Fix bug', 'Close issue'))} #{number}")
    return tuple(sorted(titles))


def _description_pool() -> tuple[str, ...]:
    pick = random.Random(5)  # noqa: S311
    sentences = _SENTENCES.split("|")
    pool = set()
    for _ in range(400):
        description = " ".join(pick.sample(sentences, pick.randint(1, 3)))
        if pick.random() < 0.1:
            description += "\n" + pick.choice(_LISTS)
        pool.add(description)
    return tuple(sorted(pool))


_TAG_NAMES = (
    *("work", "home", "errands", "shopping", "family", "health", "finance", "bills"),
    *("travel", "urgent", "someday", "reading", "fitness", "garden", "car", "kids"),
    *("admin", "calls", "email", "ideas"),
)
_TAG_INDEX = {name: index for index, name in enumerate(_TAG_NAMES)}
# How many tags a task carries: 0 (half the tasks), 1 (three in ten), 2 or 3
# (one in twenty). Three quarters of a link per task on average: a link costs
# the database about what a task row does (two foreign-key checks).
_TAGS_PER_TASK_WEIGHTS = (10, 6, 3, 1)


def _tag_list_pool() -> tuple[tuple[int, ...], ...]:
    """A fixed pool of tag lists (indexes into `_TAG_NAMES`, in order, no
    repeats) to draw from: "work" and "home" common, "ideas" rare."""
    pick = random.Random(6)  # noqa: S311
    weights = [1 / (rank + 2) for rank in range(len(_TAG_NAMES))]
    lists: list[tuple[int, ...]] = []
    for _ in range(2000):
        (size,) = pick.choices(range(4), weights=_TAGS_PER_TASK_WEIGHTS)
        chosen: list[int] = []
        while len(chosen) < size:
            (index,) = pick.choices(range(len(_TAG_NAMES)), weights=weights)
            if index not in chosen:
                chosen.append(index)
        lists.append(tuple(chosen))
    return tuple(lists)


_TITLES = _title_pool()
_DESCRIPTIONS = _description_pool()
_TITLES_CSV = tuple(_csv_field(title) for title in _TITLES)
_DESCRIPTIONS_CSV = tuple(_csv_field(description) for description in _DESCRIPTIONS)
_TAG_LISTS = _tag_list_pool()
