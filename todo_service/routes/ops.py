"""Liveness and readiness (API.md, Operations)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from sqlalchemy.exc import SQLAlchemyError

from ..db.connections import ping_database
from ..errors import DatabaseUnavailable
from ..schemas import HealthOut
from .common import PUBLIC, ApiBlueprint, json_response

blp = ApiBlueprint("ops", __name__, url_prefix="", description="Operations.")


@blp.route("/healthz")
class Health(MethodView):
    @blp.response(200, HealthOut, description="The process serves.")
    @blp.doc(operationId="checkLiveness", security=PUBLIC)
    def get(self) -> Any:
        """Liveness: the process serves (never touches the database)"""
        return json_response({"status": "ok"})


@blp.route("/readyz")
class Ready(MethodView):
    @blp.response(200, HealthOut, description="The database answers.")
    @blp.errors(503)
    @blp.doc(operationId="checkReadiness", security=PUBLIC)
    def get(self) -> Any:
        """Readiness: the database answers"""
        try:
            ping_database()
        except SQLAlchemyError:
            raise DatabaseUnavailable() from None
        return json_response({"status": "ok"})
