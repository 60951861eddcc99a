"""Accounts: registration, login, profile changes, deletion.

Every statement runs on the request's one connection (`db.connections`), each
atomic on its own, and every read gives an `Account`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..db.connections import connection
from ..db.dialects import next_timestamp, utcnow
from ..db.models import User
from ..errors import EmailTaken, InvalidCredentials, Unauthorized, WrongPassword

PasswordCheck = Callable[[str, str], bool]


@dataclass(frozen=True)
class Account:
    """One user's row (what `UserOut` shows of it, and what the services need)."""

    id: uuid.UUID
    email: str
    name: str | None
    password_hash: str
    token_version: int
    created_at: datetime
    updated_at: datetime


# In the order of Account's fields.
_ACCOUNT_COLUMNS = (
    User.id,
    User.email,
    User.name,
    User.password_hash,
    User.token_version,
    User.created_at,
    User.updated_at,
)


def _one_account(condition: ColumnElement[bool]) -> Account | None:
    row = connection().execute(select(*_ACCOUNT_COLUMNS).where(condition)).first()
    return None if row is None else Account(*row)


def register(*, email: str, password_hash: str, name: str | None) -> Account:
    """Create an account; `email` comes already trimmed and lower-cased.

    Uniqueness is the database's job: two registrations racing for one email
    both get past any check-then-insert, but only one insert succeeds.
    """
    now = utcnow()
    account = Account(
        id=uuid.uuid4(),
        email=email,
        name=name,
        password_hash=password_hash,
        token_version=0,
        created_at=now,
        updated_at=now,
    )
    try:
        connection().execute(insert(User).values(vars(account)))
    except IntegrityError:
        raise EmailTaken() from None
    return account


def find_by_email(email: str) -> Account | None:
    return _one_account(User.email == email)


def get(user_id: uuid.UUID) -> Account:
    account = _one_account(User.id == user_id)
    if account is None:  # deleted since the token was checked
        raise Unauthorized("User no longer exists.")
    return account


def authenticate(
    *, email: str, password: str, check: PasswordCheck, burn: Callable[[str], None]
) -> Account:
    """The account whose password matches; the same 401 for an unknown email
    and a wrong password, in about the same time (`burn` checks a dummy hash)."""
    account = find_by_email(email)
    if account is None:
        burn(password)
        raise InvalidCredentials()
    if not check(account.password_hash, password):
        raise InvalidCredentials()
    return account


def update_profile(
    *,
    user_id: uuid.UUID,
    token_version: int,
    changes: dict[str, object],
    check: PasswordCheck,
    hash_password: Callable[[str], str],
) -> Account:
    """Apply `name` and/or a new `password` (which needs the right
    `current_password` and revokes every token issued before it).

    The write is one UPDATE that also requires the caller's token to be still
    current: of two password changes with one token, the second finds the
    version moved on and gets 401, as does a change racing the account's
    deletion.
    """
    account = get(user_id)
    values: dict[str, Any] = {}
    if "password" in changes:
        current = changes.get("current_password")
        if not isinstance(current, str) or not check(account.password_hash, current):
            raise WrongPassword()
        values["password_hash"] = hash_password(str(changes["password"]))
        values["token_version"] = User.token_version + 1
    if "name" in changes and changes["name"] != account.name:
        values["name"] = changes["name"]
    if not values:
        return account
    values["updated_at"] = next_timestamp(User.updated_at)
    row = (
        connection()
        .execute(
            update(User)
            .where(User.id == user_id, User.token_version == token_version)
            .values(values)
            .returning(*_ACCOUNT_COLUMNS)
        )
        .first()
    )
    if row is None:
        raise Unauthorized("Token has been revoked.")
    return Account(*row)


def delete_account(user_id: uuid.UUID) -> None:
    """Delete the user; the foreign key's ON DELETE CASCADE takes the tasks."""
    connection().execute(delete(User).where(User.id == user_id))
