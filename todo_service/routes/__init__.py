"""HTTP layer: blueprints that validate, call one service, and render."""

from flask import Flask

from ..openapi import api
from . import (
    auth,
    docs,
    ops,
    sync,  # noqa: F401 (its routes join tasks.blp before it is registered)
    tasks,
)
from .converters import register_converters


def register_routes(app: Flask) -> None:
    register_converters(app)
    api.register_blueprint(auth.blp)
    api.register_blueprint(tasks.blp)
    api.register_blueprint(ops.blp)
    app.register_blueprint(docs.blp)  # Swagger UI's assets: not an API operation
