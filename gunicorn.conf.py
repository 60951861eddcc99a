"""gunicorn settings, read from the environment: the README, the Dockerfile and
the tests all start the service as `gunicorn -c gunicorn.conf.py wsgi:app`."""

import multiprocessing
import os
import sys

from dotenv import load_dotenv
from gunicorn import glogging

# The master reads settings too (PORT, AUTO_MIGRATE, ...): a .env file counts
# here as it does in wsgi.py; the real environment wins.
load_dotenv()


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        sys.exit(f"configuration error: {name} must be a whole number, got {value!r}")


bind = f"0.0.0.0:{_int('PORT', 8000)}"
# Two workers per core, each with 4 threads (gthread): a thread waiting on the
# database (a row lock, a round trip) leaves the worker to another request,
# and keep-alive connections are reused. Measured with the side-by-side
# harness (2 workers, ratio to the raw-WSGI ceiling; sync / gthread 2 /
# gthread 4): toggle 0.56 / 0.59 / 0.63, create 0.60 / 0.63 / 0.71, get_one
# 0.41 / 0.44 / 0.45, list_deep 0.87 / 0.88 / 0.92, list_first and mixed
# equal within noise (README, Performance).
workers = _int("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2)
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread").strip() or "gthread"
threads = _int("GUNICORN_THREADS", 4)
# Behind a load balancer: a hung request is cut after `timeout`; on SIGTERM
# in-flight requests get `graceful_timeout` to finish.
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# The request log line comes from the app (one JSON line per request);
# gunicorn's own access log would repeat it.
accesslog = None


class _AppLogsRequests(glogging.Logger):
    """gunicorn's logger without the access log. With `logconfig_dict` set,
    gunicorn builds an access line for every request even when nothing prints
    it: a few percent of a request's CPU."""

    def access(self, resp, req, environ, request_time):
        return None


logger_class = _AppLogsRequests
# gunicorn's control socket needs a writable home; the service does not use it.
control_socket_disable = True

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "todo_service.web.observability.JsonFormatter"}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stdout",
        }
    },
    "root": {"handlers": ["stdout"], "level": os.environ.get("LOG_LEVEL", "INFO").upper()},
    "loggers": {
        "gunicorn.error": {
            "handlers": ["stdout"],
            "level": os.environ.get("LOG_LEVEL", "INFO").upper(),
            "propagate": False,
        },
        "gunicorn.access": {"handlers": [], "propagate": False},
    },
}


def on_starting(server):  # noqa: ARG001 (gunicorn's hook signature)
    """AUTO_MIGRATE: upgrade the schema once, in the master, before workers fork."""
    from todo_service.config import ConfigError
    from todo_service.deploy import auto_migrate_if_enabled

    try:
        auto_migrate_if_enabled()
    except ConfigError as exc:
        sys.exit(f"configuration error: {exc}")


def post_fork(server, worker):  # noqa: ARG001
    """Never share a database connection across the fork: drop any pool the
    master's code left behind (without closing the master's sockets)."""
    from todo_service.deploy import forget_inherited_connections

    forget_inherited_connections()


def pre_request(worker, req):  # noqa: ARG001
    """Let the app end this connection cleanly after its answer, when it
    leaves a body too large to throw away (todo_service/web/connection_close.py)."""
    from todo_service.web.connection_close import attach_server_request

    attach_server_request(req)


def post_request(worker, req, environ, resp):  # noqa: ARG001
    from todo_service.web.connection_close import detach_server_request

    detach_server_request()


# Metrics: every worker writes its numbers to files in
# PROMETHEUS_MULTIPROC_DIR and /metrics adds them up. prometheus_client reads
# the variable when it is first imported, so it is set here, in the master,
# before any hook runs or any worker forks. Always under gunicorn, not only
# with several workers: `--workers` on the command line can override `workers`
# above, and a replaced worker's counts are kept rather than reset.
_OWN_METRICS_DIR_KEY = "TODO_GUNICORN_METRICS_DIR"  # the directory made here, if any


def _prepare_metrics_dir() -> None:
    disabled = os.environ.get("METRICS_ENABLED", "").strip().lower() in {"0", "false", "no", "off"}
    if disabled or os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip():
        return
    import tempfile

    path = tempfile.mkdtemp(prefix="todo-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    os.environ[_OWN_METRICS_DIR_KEY] = path


_prepare_metrics_dir()


def child_exit(server, worker):  # noqa: ARG001
    """A dead worker's live gauges (database connections in use) stop counting;
    its counters stay in the totals."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(server):  # noqa: ARG001
    """Remove the metrics directory made above (not one given in the environment)."""
    path = os.environ.get(_OWN_METRICS_DIR_KEY)
    if path:
        import shutil

        shutil.rmtree(path, ignore_errors=True)
