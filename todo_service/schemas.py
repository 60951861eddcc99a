"""Request and response schemas (marshmallow): validation and the OpenAPI document.

Names say the direction: `...In` / `Task{Create,Replace,Patch}` are loaded from
requests, `...Out` describe responses, `TaskListArgs` is the query string.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from marshmallow import (
    EXCLUDE,
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from .db.models import (
    DEFAULT_PRIORITY,
    DESCRIPTION_MAX_LENGTH,
    EMAIL_MAX_LENGTH,
    NAME_MAX_LENGTH,
    PRIORITIES,
    TAG_MAX_LENGTH,
    TAGS_PER_TASK,
    TITLE_MAX_LENGTH,
)

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128
STATUSES = ("pending", "completed")
SORT_KEYS = ("created_at", "updated_at", "title", "due_at", "priority")
SORTS = tuple(f"{sign}{key}" for key in SORT_KEYS for sign in ("", "-"))


class Text(fields.String):
    """A string without NUL characters (PostgreSQL cannot store them)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        if text is not None and "\x00" in text:
            raise ValidationError("Must not contain NUL characters.")
        return text


class TrimmedText(Text):
    """Surrounding white space removed before the length is checked."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        return text.strip() if text is not None else None


class StrictBoolean(fields.Boolean):
    """A JSON `true` or `false` only: not "true", 1, "yes" (API.md)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, bool):
            raise ValidationError("Not a valid boolean.")
        return value


# RFC 3339 date-time with a mandatory offset; `T`/`t` and `Z`/`z` both
# accepted (API.md, Details 1.1). Fraction digits past the sixth are cut.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 timestamp with an offset, as an aware UTC datetime;
    ValueError for anything else, or for an instant outside years 1 to 9999
    in UTC."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError("not an RFC 3339 date-time with an offset")
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    fraction, zulu, sign, offset_hours, offset_minutes = match.groups()[6:]
    microsecond = int((fraction or "0")[:6].ljust(6, "0"))
    local = datetime(year, month, day, hour, minute, second, microsecond)
    offset = timedelta(0)
    if not zulu:
        if int(offset_hours) > 23 or int(offset_minutes) > 59:
            raise ValueError("offset out of range")
        offset = timedelta(hours=int(offset_hours), minutes=int(offset_minutes))
        if sign == "-":
            offset = -offset
    try:
        return (local - offset).replace(tzinfo=UTC)  # OverflowError outside years 1 to 9999
    except OverflowError:
        raise ValueError("outside years 1 to 9999 in UTC") from None


class OffsetDateTime(fields.Field):
    """An RFC 3339 timestamp that carries its offset, loaded as UTC;
    documented as `date-time`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metadata = {"type": "string", "format": "date-time", **self.metadata}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str):
            raise ValidationError("Not a valid RFC 3339 date-time.")
        try:
            return parse_rfc3339(value)
        except ValueError:
            raise ValidationError(
                "Not a valid RFC 3339 date-time with an offset (Z or ±hh:mm), "
                "in years 1 to 9999 UTC."
            ) from None


class TagList(fields.Field):
    """Tags: each trimmed, 1 to 50 code points (counted after trimming, before
    lower-casing), then lower-cased (Unicode lower case, not case folding);
    duplicates collapse to the first; at most 20 after that. Errors are one
    flat list under `tags`, as the error shape wants."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # No minLength/maxLength on the items: the limits count code points
        # after trimming, which a schema cannot say (a 50-letter tag with
        # spaces around it is valid).
        self.metadata = {
            "type": "array",
            "items": {"type": "string"},
            "description": (
                f"Each trimmed, then 1 to {TAG_MAX_LENGTH} characters, lower-cased; "
                f"at most {TAGS_PER_TASK} once duplicates collapse; order kept."
            ),
            **self.metadata,
        }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, list):
            raise ValidationError("Must be a list of strings.")
        names: list[str] = []
        for item in value:
            names.append(normalize_tag(item))
        unique = list(dict.fromkeys(names))
        if len(unique) > TAGS_PER_TASK:
            raise ValidationError(f"At most {TAGS_PER_TASK} tags.")
        return unique


def normalize_tag(value: Any) -> str:
    """A tag as stored and compared: trimmed and lower-cased; ValidationError
    for anything that is not a 1 to 50 code point string."""
    if not isinstance(value, str):
        raise ValidationError("Each tag must be a string.")
    if "\x00" in value:
        raise ValidationError("Tags must not contain NUL characters.")
    trimmed = value.strip()
    if not 1 <= len(trimmed) <= TAG_MAX_LENGTH:  # code points
        raise ValidationError(f"Each tag must be 1 to {TAG_MAX_LENGTH} characters after trimming.")
    return trimmed.lower()


class TagFilter(fields.List):
    """The repeatable `tag` of a listing: each normalised as a task's tags
    are, duplicates dropped; errors one flat list under `tag`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(fields.String(), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        values = value if isinstance(value, list) else [value]
        return list(dict.fromkeys(normalize_tag(item) for item in values))


def _not_blank(what: str) -> validate.Validator:
    return validate.Length(min=1, error=f"{what} must not be blank.")


class BodySchema(Schema):
    class Meta:
        unknown = RAISE  # API.md: unknown fields are a 422, never ignored


# --------------------------------------------------------------------- accounts


class EmailAddress(TrimmedText):
    """Trimmed and lower-cased: emails compare case-insensitively (API.md)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        return text.lower() if text is not None else None


class RegisterIn(BodySchema):
    email = EmailAddress(
        required=True,
        validate=[validate.Length(max=EMAIL_MAX_LENGTH), validate.Email()],
        metadata={"example": "ada@example.com"},
    )
    password = Text(
        required=True,
        validate=validate.Length(min=PASSWORD_MIN_LENGTH, max=PASSWORD_MAX_LENGTH),
        metadata={"format": "password"},
    )
    name = Text(allow_none=True, validate=validate.Length(max=NAME_MAX_LENGTH))


class LoginIn(BodySchema):
    email = EmailAddress(required=True, validate=validate.Length(max=EMAIL_MAX_LENGTH))
    password = Text(
        required=True,
        validate=validate.Length(max=PASSWORD_MAX_LENGTH),
        metadata={"format": "password"},
    )


class LogoutIn(BodySchema):
    refresh_token = fields.String(
        allow_none=True,
        metadata={"description": "Also revoke this refresh token (if it is one of yours)."},
    )


class MePatch(BodySchema):
    name = Text(allow_none=True, validate=validate.Length(max=NAME_MAX_LENGTH))
    password = Text(
        validate=validate.Length(min=PASSWORD_MIN_LENGTH, max=PASSWORD_MAX_LENGTH),
        metadata={"format": "password"},
    )
    current_password = Text(
        validate=validate.Length(max=PASSWORD_MAX_LENGTH),
        metadata={"format": "password", "description": "Required with `password`."},
    )


# UTC timestamps as the task representation has them (`...T22:05:07.123456Z`).
RFC3339_UTC = "%Y-%m-%dT%H:%M:%S.%fZ"


class UtcTimestamp(fields.DateTime):
    """A UTC timestamp, written as `RFC3339_UTC`; documented as `date-time`.

    The format is applied here rather than passed as `format=`: apispec
    documents a custom DateTime format as `format: null`, which is not OpenAPI.
    """

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else value.strftime(RFC3339_UTC)


class UserOut(Schema):
    id = fields.UUID(required=True)
    email = fields.String(required=True)
    name = fields.String(required=True, allow_none=True)
    created_at = UtcTimestamp(required=True)
    updated_at = UtcTimestamp(required=True)


class TokenPairOut(Schema):
    access_token = fields.String(required=True)
    refresh_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"enum": ["bearer"]})
    expires_in = fields.Integer(
        required=True, metadata={"description": "Access token lifetime in seconds."}
    )


# ------------------------------------------------------------------------ tasks


class _TaskFields(BodySchema):
    title = TrimmedText(
        validate=[
            _not_blank("Title"),
            validate.Length(max=TITLE_MAX_LENGTH),
        ],
        metadata={"example": "Buy milk"},
    )
    description = Text(allow_none=True, validate=validate.Length(max=DESCRIPTION_MAX_LENGTH))
    completed = StrictBoolean()
    status = fields.String(validate=validate.OneOf(STATUSES))
    priority = fields.String(validate=validate.OneOf(PRIORITIES))
    due_at = OffsetDateTime(allow_none=True, metadata={"example": "2026-12-24T18:00:00Z"})
    tags = TagList(metadata={"example": ["home", "errands"]})

    @validates_schema
    def completed_matches_status(self, data: dict[str, Any], **kwargs: Any) -> None:
        both = "completed" in data and "status" in data
        if both and data["completed"] != (data["status"] == "completed"):
            raise ValidationError("`completed` and `status` disagree.", "_schema")

    @post_load
    def fold_status(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        # `status` is another view of `completed`: keep one fact.
        status = data.pop("status", None)
        if status is not None:
            data["completed"] = status == "completed"
        return data


class TaskCreate(_TaskFields):
    """A field left out takes its default."""

    title = TrimmedText(
        required=True,
        validate=[_not_blank("Title"), validate.Length(max=TITLE_MAX_LENGTH)],
        metadata={"example": "Buy milk"},
    )

    @post_load
    def apply_defaults(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        data.setdefault("description", None)
        data.setdefault("completed", False)
        data.setdefault("priority", DEFAULT_PRIORITY)
        data.setdefault("due_at", None)
        data.setdefault("tags", [])
        return data


class TaskReplace(TaskCreate):
    """PUT: the whole task; a field left out takes its default."""


class TaskPatch(_TaskFields):
    """PATCH: any subset of the PUT fields."""


class CompleteIn(BodySchema):
    completed = StrictBoolean(required=True)


class TaskOut(Schema):
    id = fields.UUID(required=True)
    user_id = fields.UUID(required=True)
    title = fields.String(required=True)
    description = fields.String(required=True, allow_none=True)
    completed = fields.Boolean(required=True)
    status = fields.String(required=True, metadata={"enum": list(STATUSES)})
    priority = fields.String(required=True, metadata={"enum": list(PRIORITIES)})
    due_at = UtcTimestamp(required=True, allow_none=True)
    tags = fields.List(fields.String(), required=True)
    created_at = UtcTimestamp(required=True)
    updated_at = UtcTimestamp(required=True)


class TagCountOut(Schema):
    tag = fields.String(required=True)
    count = fields.Integer(
        required=True, metadata={"minimum": 1, "description": "Tasks carrying the tag."}
    )


class TaskListArgs(Schema):
    class Meta:
        unknown = EXCLUDE  # API.md: unknown query parameters are ignored

    status = fields.String(validate=validate.OneOf(STATUSES))
    # The strings true/false only: marshmallow's Boolean also takes 1, yes, on.
    completed = fields.String(validate=validate.OneOf(("true", "false")))
    q = Text(metadata={"description": "Case-insensitive substring of title or description."})
    priority = fields.String(validate=validate.OneOf(PRIORITIES))
    tag = TagFilter(
        metadata={"description": "Tasks carrying every tag given (compared lower-cased)."},
    )
    due_before = OffsetDateTime(metadata={"description": "`due_at` before this instant."})
    due_after = OffsetDateTime(metadata={"description": "`due_at` at or after this instant."})
    overdue = fields.String(
        validate=validate.OneOf(("true", "false")),
        metadata={"description": "`true`: not completed and due before now; `false`: the rest."},
    )
    sort = fields.String(load_default="-created_at", validate=validate.OneOf(SORTS))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    page_size = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class ChangesArgs(Schema):
    class Meta:
        unknown = EXCLUDE

    since = Text(
        validate=validate.Length(min=1),
        metadata={"description": "The `cursor` of your previous pull; leave out to start over."},
    )
    limit = fields.Integer(load_default=500, validate=validate.Range(min=1, max=1000))


class ChangesOut(Schema):
    """A pull of the change feed (API.md, Sync)."""

    changes = fields.List(
        fields.Nested(TaskOut),
        required=True,
        metadata={"description": "Tasks created or changed, latest state, in change order."},
    )
    deleted = fields.List(
        fields.UUID(),
        required=True,
        metadata={"description": "Ids of deleted tasks (possibly never seen by you)."},
    )
    cursor = fields.String(
        required=True, metadata={"description": "Opaque: send it back as `since` next time."}
    )
    has_more = fields.Boolean(required=True, metadata={"description": "Pull again at once."})


class Refused(fields.Field):
    """A listing filter that clearing does not take: present at all, a 422."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        raise ValidationError("Clearing takes no filter but status=completed.")


class ClearArgs(Schema):
    class Meta:
        unknown = EXCLUDE  # `sort`, `page`, `page_size` and unknown ones are ignored

    status = fields.String(
        required=True,
        validate=validate.Equal("completed", error="Only completed tasks can be cleared."),
    )
    completed = Refused(metadata={"description": "Refused (422)."})
    q = Refused(metadata={"description": "Refused (422)."})
    priority = Refused(metadata={"description": "Refused (422)."})
    tag = Refused(metadata={"description": "Refused (422)."})
    due_before = Refused(metadata={"description": "Refused (422)."})
    due_after = Refused(metadata={"description": "Refused (422)."})
    overdue = Refused(metadata={"description": "Refused (422)."})


class ClearedOut(Schema):
    deleted = fields.Integer(
        required=True, metadata={"minimum": 0, "description": "Tasks deleted."}
    )


class ErrorOut(Schema):
    """Every error answer, whatever its status (API.md, Errors)."""

    code = fields.Integer(required=True, metadata={"description": "The HTTP status."})
    status = fields.String(required=True, metadata={"description": "Its reason phrase."})
    message = fields.String(required=True, validate=validate.Length(min=1))
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.Dict(
            keys=fields.String(),
            values=fields.List(fields.String(), validate=validate.Length(min=1)),
        ),
        metadata={"description": "Field errors by location (json, query, headers)."},
    )


class PaginationMetadata(Schema):
    """The `X-Pagination` header of a list (API.md, Paging)."""

    total = fields.Integer(required=True, metadata={"description": "Tasks matching the filters."})
    total_pages = fields.Integer(required=True, metadata={"minimum": 1})
    first_page = fields.Integer(required=True, metadata={"enum": [1]})
    last_page = fields.Integer(required=True, metadata={"minimum": 1})
    page = fields.Integer(required=True, metadata={"minimum": 1})
    previous_page = fields.Integer(metadata={"description": "Only past the first page."})
    next_page = fields.Integer(metadata={"description": "Only before the last page."})


class HealthOut(Schema):
    status = fields.String(required=True, metadata={"enum": ["ok"]})
