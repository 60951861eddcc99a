"""HTTP plumbing around the views: WSGI middleware, request guards, CORS,
rate limits, metrics and the request log."""
