"""`flask` commands beyond Flask-Migrate's `flask db ...`."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from .services import tokens

tokens_cli = AppGroup("tokens", help="Token revocation entries.")


@tokens_cli.command("purge")
def purge_tokens() -> None:
    """Drop revocation entries of tokens that have expired anyway."""
    removed = tokens.purge_expired()
    click.echo(f"Purged {removed} expired revocation entries.")


def register_commands(app: Flask) -> None:
    app.cli.add_command(tokens_cli)
