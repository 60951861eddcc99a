"""Swagger UI's assets, served by the service so /api/docs works offline.
flask-smorest renders the page; `OPENAPI_SWAGGER_UI_URL` points
its script and style links here. A plain Flask blueprint: not in the OpenAPI
document."""

from __future__ import annotations

from flask import Blueprint, Response, send_from_directory
from swagger_ui_bundle import swagger_ui_path
from werkzeug.exceptions import NotFound

# What flask-smorest's page loads (plus the icons); the package's demo page
# and its Petstore initializer are not served.
ASSETS = frozenset(
    {
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
        "favicon-16x16.png",
        "favicon-32x32.png",
    }
)
CACHE_SECONDS = 3600  # revalidated with ETag/Last-Modified afterwards

blp = Blueprint("swagger_ui", __name__, url_prefix="/api/docs/swagger-ui")


@blp.get("/<name>")
def asset(name: str) -> Response:
    if name not in ASSETS:
        raise NotFound()
    return send_from_directory(str(swagger_ui_path), name, max_age=CACHE_SECONDS)
