"""Ending a keep-alive connection cleanly, from inside the app.

When the service answers without reading a request body that it cannot
afford to read and throw away (too large), the bytes left on the socket are
not the start of a next request: the connection must end after the answer,
and the answer must say so (`Connection: close`). A WSGI app cannot ask for
that in the standard interface (gunicorn drops a `Connection` header set by
the app as hop-by-hop), so gunicorn's `pre_request` hook (gunicorn.conf.py)
hands the app its request here, and `close_after_response` marks it: gunicorn
then answers with `Connection: close` and closes after the response, instead
of saying keep-alive and dropping the connection when it cannot discard the
body itself.

The request is kept per thread: gunicorn calls the hook and the app in the
same thread (sync and gthread workers). Under another server nothing is
attached and marking is a no-op.
"""

from __future__ import annotations

import threading
from typing import Any

_current = threading.local()


def attach_server_request(request: Any) -> None:
    """gunicorn's `pre_request` hook: the request now being served."""
    _current.request = request


def detach_server_request() -> None:
    """gunicorn's `post_request` hook."""
    _current.request = None


def close_after_response() -> None:
    request = getattr(_current, "request", None)
    if request is not None:
        request.must_close = True  # gunicorn: `Connection: close`, then close
