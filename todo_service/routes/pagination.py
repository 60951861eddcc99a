"""`X-Pagination` (JSON) and RFC 8288 `Link` headers (API.md, Paging)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson
from flask import request
from werkzeug.datastructures import MultiDict

from ..openapi import PAGINATION_HEADER

PAGINATION_HEADERS_DOC: dict[str, Any] = {
    "X-Pagination": PAGINATION_HEADER,  # a JSON header component (openapi.py)
    "Link": {
        "description": "RFC 8288 links: first, last, and prev / next where there is one.",
        "required": True,
        "schema": {"type": "string"},
    },
}


def pagination_metadata(*, total: int, page: int, page_size: int) -> dict[str, int]:
    total_pages = max(1, -(-total // page_size))
    meta = {
        "total": total,
        "total_pages": total_pages,
        "first_page": 1,
        "last_page": total_pages,
        "page": page,
    }
    if page > 1:
        # A page past the end points back at the last real page.
        meta["previous_page"] = min(page - 1, total_pages)
    if page < total_pages:
        meta["next_page"] = page + 1
    return meta


def pagination_headers(
    *, total: int, page: int, page_size: int, args: MultiDict[str, str]
) -> dict[str, str]:
    meta = pagination_metadata(total=total, page=page, page_size=page_size)
    rels = {"first": meta["first_page"], "last": meta["last_page"]}
    if "previous_page" in meta:
        rels["prev"] = meta["previous_page"]
    if "next_page" in meta:
        rels["next"] = meta["next_page"]
    links = ", ".join(f'<{_page_url(args, number)}>; rel="{rel}"' for rel, number in rels.items())
    return {"X-Pagination": orjson.dumps(meta).decode(), "Link": links}


def _page_url(args: MultiDict[str, str], page: int) -> str:
    """This request's URL with another page; every other parameter kept."""
    params = [(key, value) for key, value in args.items(multi=True) if key != "page"]
    params.append(("page", str(page)))
    return f"{request.path}?{urlencode(params)}"
