"""gunicorn settings, read from the environment: the README, the Dockerfile and
the tests all start the service as `gunicorn -c gunicorn.conf.py wsgi:app`."""

import multiprocessing
import os


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


bind = f"0.0.0.0:{_int('PORT', 8000)}"
# Sync workers: login hashing is CPU-bound, queries are short. Two per core
# keeps a core busy while the other worker waits on the database.
workers = _int("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2)
threads = _int("GUNICORN_THREADS", 1)
# Behind a load balancer: a hung request is cut after `timeout`; on SIGTERM
# in-flight requests get `graceful_timeout` to finish.
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# The request log line comes from the app (one JSON line per request);
# gunicorn's own access log would repeat it.
accesslog = None
# gunicorn's control socket needs a writable home; the service does not use it.
control_socket_disable = True

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "todo_service.observability.JsonFormatter"}},
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
    from todo_service.deploy import auto_migrate_if_enabled

    auto_migrate_if_enabled()


def post_fork(server, worker):  # noqa: ARG001
    """Never share a database connection across the fork: drop any pool the
    master's code left behind (without closing the master's sockets)."""
    from todo_service.deploy import forget_inherited_connections

    forget_inherited_connections()
