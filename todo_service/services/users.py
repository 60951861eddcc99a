"""Accounts: registration, login, profile changes, deletion."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from ..db.connections import connection
from ..db.dialects import next_timestamp, utcnow
from ..db.models import User
from ..errors import EmailTaken, InvalidCredentials, Unauthorized, WrongPassword
from ..extensions import db

PasswordCheck = Callable[[str, str], bool]


def register(*, email: str, password_hash: str, name: str | None) -> User:
    """Create an account; `email` comes already trimmed and lower-cased.

    Uniqueness is the database's job: two registrations racing for one email
    both get past any check-then-insert, but only one insert succeeds.
    """
    now = utcnow()
    user = User(
        id=uuid.uuid4(),
        email=email,
        name=name,
        password_hash=password_hash,
        token_version=0,
        created_at=now,
        updated_at=now,
    )
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise EmailTaken() from None
    return user


def find_by_email(email: str) -> User | None:
    return db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()


def get(user_id: uuid.UUID) -> User:
    user = db.session.get(User, user_id)
    if user is None:  # deleted since the token was checked
        raise Unauthorized("User no longer exists.")
    return user


def authenticate(
    *, email: str, password: str, check: PasswordCheck, burn: Callable[[str], None]
) -> User:
    """The user whose password matches; the same 401 for an unknown email and
    a wrong password, in about the same time (`burn` checks a dummy hash)."""
    user = find_by_email(email)
    if user is None:
        burn(password)
        raise InvalidCredentials()
    if not check(user.password_hash, password):
        raise InvalidCredentials()
    return user


_USER_COLUMNS = (User.id, User.email, User.name, User.created_at, User.updated_at)


def update_profile(
    *,
    user_id: uuid.UUID,
    token_version: int,
    changes: dict[str, object],
    check: PasswordCheck,
    hash_password: Callable[[str], str],
) -> Any:
    """Apply `name` and/or a new `password` (which needs the right
    `current_password` and revokes every token issued before it).

    The write is one UPDATE that also requires the caller's token to be still
    current: of two password changes with one token, the second finds the
    version moved on and gets 401, as does a change racing the account's
    deletion.
    """
    user = get(user_id)
    values: dict[str, Any] = {}
    if "password" in changes:
        current = changes.get("current_password")
        if not isinstance(current, str) or not check(user.password_hash, current):
            raise WrongPassword()
        values["password_hash"] = hash_password(str(changes["password"]))
        values["token_version"] = User.token_version + 1
    if "name" in changes and changes["name"] != user.name:
        values["name"] = changes["name"]
    if not values:
        return user
    values["updated_at"] = next_timestamp(User.updated_at)
    row = (
        connection()
        .execute(
            update(User)
            .where(User.id == user_id, User.token_version == token_version)
            .values(values)
            .returning(*_USER_COLUMNS)
        )
        .mappings()
        .first()
    )
    if row is None:
        raise Unauthorized("Token has been revoked.")
    return row


def delete_account(user_id: uuid.UUID) -> None:
    """Delete the user; the foreign key's ON DELETE CASCADE takes the tasks."""
    db.session.execute(delete(User).where(User.id == user_id))
    db.session.commit()
