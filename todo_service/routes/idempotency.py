"""The `Idempotency-Key` header of `POST /api/{user_id}/tasks` (API.md,
"Safe retries"): its check, its documentation, and the answer of a request
that carries one (services/idempotency.py)."""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from flask import Response, request

from ..errors import ApiError
from ..security import defer_token_check
from ..services import idempotency
from .conditional import task_etag

HEADER = idempotency.HEADER
KEY_MAX_LENGTH = 255
KEY_PATTERN = re.compile(rf"[A-Za-z0-9._:-]{{1,{KEY_MAX_LENGTH}}}")
REPLAYED_HEADER = "Idempotent-Replayed"
_ENVIRON_KEY = "HTTP_" + HEADER.upper().replace("-", "_")

KEY_PARAMETER = {
    "in": "header",
    "name": HEADER,
    "required": False,
    "description": "Makes a retry safe: a repeat with the same key and the same JSON body "
    "within 24 hours creates nothing and gets the first answer again "
    "(with `Idempotent-Replayed: true`); the same key with another body is a 422. "
    "Keys belong to the user.",
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": KEY_MAX_LENGTH,
        "pattern": f"^{KEY_PATTERN.pattern}$",
    },
}
REPLAYED_HEADER_DOC = {
    REPLAYED_HEADER: {
        "description": "`true`: the answer kept for this `Idempotency-Key`, replayed; "
        "no task was created by this request.",
        "required": False,
        "schema": {"type": "string", "enum": ["true"]},
    }
}


def checks_idempotency_key(view: Callable[..., Any]) -> Callable[..., Any]:
    """Put above `@blp.arguments`: a malformed key is a 400 under
    `errors.headers`, before the body is looked at (API.md, Details 1.1). A
    sane key reaches the view as `idempotency_key`; without the header the
    view is called as it would be without this decorator."""

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        # One dict lookup on the benchmarked path without the header.
        # Servers join repeated headers with ", ": no longer a sane key.
        key = request.environ.get(_ENVIRON_KEY)
        if key is None:
            return view(*args, **kwargs)
        if not KEY_PATTERN.fullmatch(key):
            raise ApiError(
                f"Invalid {HEADER} header.",
                errors={
                    "headers": {
                        HEADER: [
                            f"Must be one value of 1 to {KEY_MAX_LENGTH} characters "
                            "of A-Z, a-z, 0-9, '.', '_', ':' and '-'."
                        ]
                    }
                },
            )
        return view(*args, idempotency_key=key, **kwargs)

    return checked


def create_task_once(
    *,
    owner_id: uuid.UUID,
    key: str,
    fields: dict[str, Any],
    location_of: Callable[[Any], str],
) -> Response:
    """The answer to a create that carries a sane `Idempotency-Key`."""
    answer = idempotency.create_task_once(
        owner_id=owner_id,
        key=key,
        fingerprint=idempotency.request_fingerprint(request.get_data(cache=True)),
        fields=fields,
        token=defer_token_check(),
        location_of=location_of,
    )
    # The ETag of the task as the kept body shows it (a replay answers what
    # the first request answered, even if the task has changed since).
    headers = {"Location": answer.location, "ETag": task_etag(orjson.loads(answer.body))}
    if answer.replayed:
        headers[REPLAYED_HEADER] = "true"
    return Response(answer.body, status=answer.status, headers=headers, mimetype="application/json")
