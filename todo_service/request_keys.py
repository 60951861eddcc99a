# ruff: noqa: S105 (names of keys, not secrets)
"""The names under which one request's state is kept, all in one place and
one style (`todo.<what>`): in the WSGI environ, for what the middleware
outside Flask reads or writes, and on Flask's `g`, for the rest."""

# WSGI environ
REQUEST_ID = "todo.request_id"  # the request's id (X-Request-ID), for the log and errors
USER_ID = "todo.user_id"  # the authenticated caller, for the request log line
ROUTE = "todo.route"  # the URL rule's template, for the metrics' `route` label
BODY_TOO_LARGE = "todo.body_too_large"  # set by the body limit, answered with a 413

# flask.g
CONNECTION = "todo.connection"  # the request's database connection
TOKEN_CHECK = "todo.token_check"  # the token's claims still to check against the database
TOKEN_CHECK_DEFERRED = "todo.token_check_deferred"  # the view's statement checks the token
TOKEN_CHECK_OPEN = "todo.token_check_open"  # deferred, and not yet checked by anything
CALLER_ID = "todo.caller_id"  # the authenticated user
CALLER_TOKEN_VERSION = "todo.caller_token_version"  # the `ver` claim of the caller's token
RATE_LIMIT_ACCOUNT = "todo.rate_limit_account"  # the body's normalised email, read once
