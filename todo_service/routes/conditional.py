"""Conditional requests (API.md, Conditional requests and Details 1.1,
Preconditions): ETags, `If-Match`, `If-None-Match`, and their documentation.

- A task's ETag is strong: the digits of its `updated_at`
  (`"20261122220507123456"`), which moves on every change and only then.
  An If-Match tag turns back into that `updated_at` text, so that the write's
  own statement can compare it (services/preconditions.py).
- A list's ETag is weak: a hash of the owner, the request's path and query
  string, and the list's version (services/list_versions.py).
- `If-Match` compares strongly (a weak tag never matches), `If-None-Match`
  weakly; both take a list, and `*` matches any existing task. A header that
  does not parse names no tag: nothing matches it (412 for If-Match, the
  full answer for If-None-Match), never an error of its own.
"""

from __future__ import annotations

import functools
import hashlib
import re
import uuid
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

from flask import Response, request
from werkzeug.exceptions import HTTPException

from ..errors import ApiError
from ..security import defer_token_check, resolve_owner
from ..services import preconditions
from ..services.preconditions import IfMatch

ETAG_HEADER_DOC: dict[str, Any] = {
    "ETag": {
        "description": "The task's current entity tag (strong): send it in `If-Match` "
        "to change the task only as you saw it, or in `If-None-Match` to revalidate.",
        "required": True,
        "schema": {"type": "string"},
    }
}
LIST_ETAG_HEADER_DOC: dict[str, Any] = {
    "ETag": {
        "description": "The list's entity tag (weak): it changes whenever any of your "
        "tasks changes, appears or disappears, and differs between query strings. Send it "
        "in `If-None-Match` to poll for a 304.",
        "required": True,
        "schema": {"type": "string"},
    }
}
NOT_MODIFIED_DOC: dict[str, Any] = {
    "description": "Not Modified: `If-None-Match` names the current ETag. No body.",
}

_IF_MATCH_PARAM = {
    "in": "header",
    "name": "If-Match",
    "required": False,
    "description": "Change the task only if it is as one of these ETags (strong "
    "comparison; `*`: any existing task); else 412 and nothing changes. Checked before "
    "the body.",
    "schema": {"type": "string"},
}
_IF_NONE_MATCH_PARAM = {
    "in": "header",
    "name": "If-None-Match",
    "required": False,
    "description": "304 with no body when one of these ETags (weak comparison; `*`: "
    "any) is the current one.",
    "schema": {"type": "string"},
}

# One element of an entity-tag list (RFC 9110, 8.8.3 and 5.6.1): empty, `*`
# or an entity tag, then a comma or the end.
_ELEMENT = re.compile(r'[ \t]*(?:(\*)|(W/)?"([\x21\x23-\x7e\x80-\xff]*)")?[ \t]*(?:,|$)')
_TASK_TAG = re.compile(r"[0-9]{20}")
_NOT_DIGITS = re.compile(r"[^0-9]+")


@dataclass(frozen=True)
class _Tags:
    any: bool  # `*`
    tags: tuple[tuple[bool, str], ...]  # (weak, opaque tag without its quotes)


_NOTHING = _Tags(False, ())


def _parse(value: str) -> _Tags:
    """The header's tags; a header that is not a list of them names none."""
    star, tags, position = False, [], 0
    while position < len(value):
        element = _ELEMENT.match(value, position)
        if element is None or element.end() == position:
            return _NOTHING
        position = element.end()
        if element[1]:
            star = True
        elif element[3] is not None:
            tags.append((bool(element[2]), element[3]))
    return _Tags(star, tuple(tags))


def task_etag(task: dict[str, Any]) -> str:
    """The strong ETag of a task row (its `updated_at` text, digits only)."""
    text: str = task["updated_at"]
    return '"' + _NOT_DIGITS.sub("", text) + '"'


def _updated_at_text(opaque: str) -> str | None:
    """The `updated_at` text a task's opaque tag stands for; None if it is not one."""
    if not _TASK_TAG.fullmatch(opaque):
        return None
    d = opaque
    return f"{d[:4]}-{d[4:6]}-{d[6:8]}T{d[8:10]}:{d[10:12]}:{d[12:14]}.{d[14:]}Z"


def if_match() -> tuple[bool, IfMatch]:
    """(whether the request has If-Match, the states it names: None for `*`)."""
    value = request.headers.get("If-Match")
    if value is None:
        return False, None
    parsed = _parse(value)
    if parsed.any:
        return True, None
    texts = (_updated_at_text(opaque) for weak, opaque in parsed.tags if not weak)
    return True, tuple(sorted({text for text in texts if text is not None}))


def none_match(etag: str) -> bool:
    """Whether If-None-Match names `etag` (weak comparison) or is `*`."""
    value = request.headers.get("If-None-Match")
    if value is None:
        return False
    parsed = _parse(value)
    opaque = etag.removeprefix("W/")[1:-1]
    return parsed.any or any(tag == opaque for _, tag in parsed.tags)


def has_if_none_match() -> bool:
    return "If-None-Match" in request.headers


def not_modified(etag: str) -> Response:
    return Response(status=304, headers={"ETag": etag})


def list_etag(owner_id: uuid.UUID, version: str) -> str:
    """The list's weak ETag: the same owner, URL and version give the same tag."""
    key = f"{owner_id}\n{request.path}\n{request.query_string.decode('latin-1')}\n{version}"
    digest = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
    return f'W/"{digest}"'


def _documented(view: Callable[..., Any], parameter: dict[str, Any]) -> None:
    """Add a header parameter to the operation's documentation (with the
    parameters flask-smorest collects from `arguments`)."""
    apidoc = deepcopy(getattr(view, "_apidoc", {}))
    apidoc.setdefault("arguments", {}).setdefault("parameters", []).append(dict(parameter))
    view._apidoc = apidoc  # type: ignore[attr-defined]


def takes_if_none_match(view: Callable[..., Any]) -> Callable[..., Any]:
    """Documents the `If-None-Match` header (the view answers it)."""
    _documented(view, _IF_NONE_MATCH_PARAM)
    return view


def takes_if_match(view: Callable[..., Any]) -> Callable[..., Any]:
    """Documents `If-Match`, and checks it before the body (RFC 9110, API.md
    Preconditions): when the body fails to load (400, 422) and the request
    has If-Match, a token no longer good (401), another user's id (403), a
    missing task (404) or a failed precondition (412) is answered instead.
    Put it outside `@blp.arguments`. Without If-Match, version 1's order."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except (ApiError, HTTPException) as exc:
            present, states = if_match()
            if exc.code not in (400, 422) or not present:
                raise
            owner = resolve_owner(kwargs["user_id"])
            preconditions.ensure(
                owner_id=owner,
                task_id=kwargs["task_id"],
                if_match=states,
                token=defer_token_check(),
            )
            raise

    _documented(wrapper, _IF_MATCH_PARAM)
    return wrapper
