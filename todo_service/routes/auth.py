"""Accounts and tokens: /api/auth/... (API.md, Authentication)."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView
from flask_jwt_extended import decode_token, jwt_required

from .. import security
from ..schemas import LoginIn, LogoutIn, MePatch, RegisterIn, TokenPairOut, UserOut
from ..services import tokens, users
from .common import BEARER, PUBLIC, ApiBlueprint

blp = ApiBlueprint("auth", __name__, url_prefix="/api/auth", description="Accounts and tokens.")


@blp.route("/register")
class Register(MethodView):
    @blp.arguments(RegisterIn())
    @blp.response(201, UserOut)
    @blp.errors(400, 409, 429, 503)
    @blp.doc(operationId="register", security=PUBLIC)
    def post(self, data: dict[str, Any]) -> Any:
        """Create an account

        The email is trimmed, stored lower-case and unique case-insensitively.
        """
        return users.register(
            email=data["email"],
            password_hash=security.hash_password(data["password"]),
            name=data.get("name"),
        )


@blp.route("/login")
class Login(MethodView):
    @blp.arguments(LoginIn())
    @blp.response(200, TokenPairOut)
    @blp.errors(400, 401, 429, 503)
    @blp.doc(operationId="login", security=PUBLIC)
    def post(self, data: dict[str, Any]) -> Any:
        """Log in: get an access and a refresh token

        A wrong email and a wrong password give the same 401.
        """
        user = users.authenticate(
            email=data["email"],
            password=data["password"],
            check=security.verify_password,
            burn=security.burn_password_check,
        )
        return security.issue_token_pair(user.id, user.token_version)


@blp.route("/refresh")
class Refresh(MethodView):
    decorators = [jwt_required(refresh=True)]

    @blp.response(200, TokenPairOut)
    @blp.errors(401, 503)
    @blp.doc(operationId="refreshTokens", security=BEARER)
    def post(self) -> Any:
        """Exchange a refresh token for a new pair

        Send the refresh token as the bearer token. It is revoked by this call
        (rotation): using it again is a 401. Used again after
        `REFRESH_REUSE_GRACE_SECONDS` (10 by default), it is taken for stolen:
        every token of its login, access and refresh, is revoked too.
        """
        return security.rotate_refresh_token()


@blp.route("/logout")
class Logout(MethodView):
    decorators = [jwt_required()]

    @blp.arguments(LogoutIn(), required=False)
    @blp.response(204)
    @blp.errors(400, 401, 503)
    @blp.doc(operationId="logout", security=BEARER)
    def post(self, data: dict[str, Any]) -> Any:
        """Log out

        Revokes the access token presented and, if given, the refresh token.
        """
        security.revoke_presented_token()
        refresh_token = data.get("refresh_token")
        if refresh_token:
            _revoke_own_refresh_token(refresh_token)
        return Response(status=204)


def _revoke_own_refresh_token(token: str) -> None:
    """Revoke `token` if it is a valid refresh token of the caller; anything
    else is ignored (API.md, Authentication)."""
    try:
        claims = decode_token(token)
    except Exception:  # any invalid, expired or foreign token: nothing to revoke
        return
    if claims.get("type") == "refresh" and claims.get("sub") == str(security.current_user_id()):
        tokens.revoke(jti=claims["jti"], expires_at=security.token_expiry(claims))


@blp.route("/me")
class Me(MethodView):
    decorators = [jwt_required()]

    @blp.response(200, UserOut)
    @blp.errors(401, 503)
    @blp.doc(operationId="getMe", security=BEARER)
    def get(self) -> Any:
        """Your account"""
        return users.get(security.current_user_id())

    @blp.arguments(MePatch())
    @blp.response(200, UserOut)
    @blp.errors(400, 401, 403, 503)
    @blp.doc(operationId="updateMe", security=BEARER)
    def patch(self, data: dict[str, Any]) -> Any:
        """Change your name or password

        A new `password` needs the right `current_password` (else 403) and
        revokes every token issued before it: log in again afterwards.
        """
        return users.update_profile(
            user_id=security.current_user_id(),
            token_version=security.current_token_version(),
            changes=data,
            check=security.verify_password,
            hash_password=security.hash_password,
        )

    @blp.response(204)
    @blp.errors(401, 503)
    @blp.doc(operationId="deleteMe", security=BEARER)
    def delete(self) -> Any:
        """Delete your account and all of its tasks"""
        users.delete_account(security.current_user_id())
        return Response(status=204)
