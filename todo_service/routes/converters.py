"""URL converters: a `{user_id}` that is neither `me` nor a UUID is a 404 from
routing itself (API.md, Order of checks)."""

from __future__ import annotations

import uuid

from flask import Flask
from werkzeug.routing import BaseConverter

from ..openapi import api

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


class UserRefConverter(BaseConverter):
    """`me`, or a user id in any letter case (parsed to a UUID)."""

    regex = f"(?:me|{_UUID})"

    def to_python(self, value: str) -> uuid.UUID | str:
        return "me" if value == "me" else uuid.UUID(value)

    def to_url(self, value: object) -> str:
        return str(value)


def register_converters(app: Flask) -> None:
    app.url_map.converters["user_ref"] = UserRefConverter
    api.register_converter(UserRefConverter, _user_ref_schema)


def _user_ref_schema(converter: BaseConverter) -> dict[str, str]:
    return {
        "type": "string",
        "pattern": f"^{UserRefConverter.regex}$",
        "description": "Your own user id (any letter case), or the literal `me`.",
        "example": "me",
    }
