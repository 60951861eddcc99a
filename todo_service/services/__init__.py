"""Business rules and queries: every query scoped to its owner in SQL."""
