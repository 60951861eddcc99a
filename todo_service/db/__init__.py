"""Database plumbing: the SQL dialect helpers, the connections (per request
and per batch job), the prebuilt statements, the tables."""
