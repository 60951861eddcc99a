"""Prometheus metrics at GET /metrics, with prometheus-client.

- `todo_http_requests_total{method, route, status}` and
  `todo_http_request_duration_seconds{method, route, status}`: `route` is the
  URL rule's template (`/api/<user_ref:user_id>/tasks`), never the raw path,
  so the number of series stays bounded; `<unmatched>` for unknown routes.
- `todo_db_pool_connections_in_use`: database connections checked out of the
  pool (what `engine.pool.checkedout()` says, for every engine and worker),
  kept by the pool's checkout/checkin events.

Under gunicorn with several workers each worker keeps its own numbers; with
`PROMETHEUS_MULTIPROC_DIR` set (gunicorn.conf.py sets one up) they go to files
there and /metrics adds up every worker's. It must be set before this module
is imported, which is why gunicorn.conf.py does it.

/metrics is a plain Flask route, not part of the OpenAPI document.
`METRICS_ENABLED=false` removes it and the per-request bookkeeping.
"""

from __future__ import annotations

from typing import Any

import prometheus_client
from flask import Blueprint, Flask, Response, request
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.exposition import choose_encoder
from sqlalchemy import event

from .. import request_keys
from ..extensions import db

UNMATCHED = "<unmatched>"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# Chosen by prometheus_client when it was first imported: files or memory.
MULTIPROCESS: bool = getattr(prometheus_client.values.ValueClass, "_multiprocess", False)

# `_created` series would double the output for no use here.
prometheus_client.disable_created_metrics()

REQUESTS = Counter(
    "todo_http_requests",
    "HTTP requests served, by route template, method and status.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "todo_http_request_duration_seconds",
    "Time to produce the response, by route template, method and status.",
    ["method", "route", "status"],
)
POOL_IN_USE = Gauge(
    "todo_db_pool_connections_in_use",
    "Database connections checked out of the pool (summed over live workers).",
    multiprocess_mode="livesum",
)

# (method, route, status) -> the labelled children; saves two `labels()` calls
# (string conversion, validation, a lock) per request. Bounded: methods are
# normalised, routes come from the URL map, statuses from the app.
_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}


def _record(method: str, route: str, status: str, seconds: float) -> None:
    key = (method, route, status)
    children = _children.get(key)
    if children is None:
        children = (REQUESTS.labels(*key), LATENCY.labels(*key))
        _children[key] = children
    children[0].inc()
    children[1].observe(seconds)


def record_request(environ: dict[str, Any], status: str, seconds: float) -> None:
    """One request's sample; called by the request observer (observability.py)
    with the status and time it measured."""
    method = environ.get("REQUEST_METHOD", "")
    _record(
        method if method in _METHODS else "other",
        environ.get(request_keys.ROUTE, UNMATCHED),
        status,
        seconds,
    )


def _note_route(_exc: BaseException | None = None) -> None:
    rule = request.url_rule
    if rule is not None:
        request.environ[request_keys.ROUTE] = rule.rule


blp = Blueprint("metrics", __name__)


@blp.get("/metrics")
def metrics() -> Response:
    """Prometheus text format (or OpenMetrics, if the scraper asks for it);
    every worker's numbers in multiprocess mode."""
    registry = REGISTRY
    if MULTIPROCESS:
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encode(registry), headers={"Content-Type": content_type})


_COUNTED = "todo.metrics_in_use"  # on the pool entry


def _on_checkout(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    # Marked on the pool entry: a checkout retried after a failed liveness
    # check fires this again for the same entry, and counts once.
    if not record.record_info.get(_COUNTED):
        record.record_info[_COUNTED] = True
        POOL_IN_USE.inc()


def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
    # Also fires for a connection attempt that failed before any checkout
    # (database down): only what was counted is uncounted.
    if record.record_info.pop(_COUNTED, False):
        POOL_IN_USE.dec()


def _count_pool_checkouts(app: Flask) -> None:
    with app.app_context():
        engine = db.engine  # made by init_app; nothing connects here
    event.listen(engine, "checkout", _on_checkout)
    event.listen(engine, "checkin", _on_checkin)


def init_metrics(app: Flask) -> None:
    """/metrics, the route template of each request and the pool gauge; the
    request observer (create_app) records each request with `record_request`."""
    if not app.config["METRICS_ENABLED"]:
        return
    app.register_blueprint(blp)
    app.teardown_request(_note_route)
    _count_pool_checkouts(app)
