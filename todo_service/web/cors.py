"""CORS for browser front ends on other origins, with flask-cors.

Off unless `CORS_ORIGINS` lists origins: then /api/* answers those origins,
preflight (OPTIONS) included, and lets their scripts read the headers the
contract puts information in. No credentials: tokens travel in the
Authorization header, never in cookies.
"""

from __future__ import annotations

from flask import Flask
from flask_cors import CORS

# Response headers a browser script may read (API.md: paging, Location, request id; 429;
# ETag for conditional requests; a replayed create).
EXPOSED_HEADERS = [
    "X-Pagination",
    "Link",
    "Location",
    "X-Request-ID",
    "Retry-After",
    "ETag",
    "Idempotent-Replayed",
]
PREFLIGHT_MAX_AGE = 600  # seconds a browser may cache a preflight answer


def init_cors(app: Flask) -> None:
    origins = app.config["CORS_ORIGINS"]
    if not origins:
        return
    CORS(
        app,
        resources={r"/api/*": {"origins": origins}},
        expose_headers=EXPOSED_HEADERS,
        max_age=PREFLIGHT_MAX_AGE,
        supports_credentials=False,
    )
