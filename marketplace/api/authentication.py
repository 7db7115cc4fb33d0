"""Bearer API tokens: `Authorization: Token <key>` (or `Bearer <key>`). Keys are stored as SHA-256 hashes."""

from __future__ import annotations

from datetime import timedelta
from functools import cache

from django.db import connection
from django.utils import timezone
from rest_framework import authentication, exceptions

from marketplace.db_prepared import prepared_cursor
from marketplace.db_rows import ModelColumns, build_row, model_columns
from marketplace.models import ApiToken, User
from marketplace.services.tokens import hash_key

TOUCH_EVERY = timedelta(minutes=5)


_TOKEN_COLUMNS = ("id", "user", "last_used_at")


@cache
def _lookup(vendor: str) -> tuple[str, list[ModelColumns]]:
    """SELECT an unrevoked token by key hash with every column of its user, in one statement (per database)."""
    parts = [model_columns(ApiToken, "t", _TOKEN_COLUMNS, connection), model_columns(User, "u", None, connection)]
    sql = (f'SELECT {", ".join(column for part in parts for column in part.select)} FROM '
           f'"{ApiToken._meta.db_table}" t INNER JOIN "{User._meta.db_table}" u ON (t."user_id" = u."id") '
           f'WHERE t."key_hash" = %s AND t."revoked_at" IS NULL')
    return sql, parts


def token_with_user(key_hash: str) -> ApiToken | None:
    """The unrevoked token with this key hash (id, user and last_used_at loaded) and its user, or None.

    One query on every request, so a revocation takes effect on the next request. Written as SQL because the ORM
    compiling `select_related(...).filter(...).first()` cost more CPU than the database answering it, and run
    prepared (parsed and planned once per connection); the objects are built as the ORM builds them
    (marketplace/db_rows.py).
    """
    sql, parts = _lookup(connection.vendor)
    with prepared_cursor() as cursor:
        cursor.execute(sql, [key_hash])
        row = cursor.fetchone()
    if row is None:
        return None
    token, user = build_row(parts, row, connection)
    token.user = user
    return token


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("token", "bearer")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode("latin-1").lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header: expected 'Token <key>'.")
        try:
            key = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token header: the key must be ASCII.") from None
        token = token_with_user(hash_key(key))
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request) -> str:
        return "Token"
