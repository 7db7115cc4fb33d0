"""Bearer API tokens: `Authorization: Token <key>` (or `Bearer <key>`). Keys are stored as SHA-256 hashes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import connection
from django.utils import timezone
from rest_framework import authentication, exceptions

from marketplace.db_prepared import prepared_cursor
from marketplace.models import ApiToken, User
from marketplace.services.tokens import hash_key

TOUCH_EVERY = timedelta(minutes=5)


_TOKEN_COLUMNS = ["id", "user_id", "last_used_at"]


@dataclass(frozen=True)
class _Lookup:
    sql: str
    user_columns: list[str]
    converters: list[tuple[int, list, object]]  # (position in the row, converters, column) as the ORM applies


_LOOKUPS: dict[str, _Lookup] = {}


def _lookup() -> _Lookup:
    """SELECT an unrevoked token by key hash with every column of its user, in one statement (per database)."""
    lookup = _LOOKUPS.get(connection.vendor)
    if lookup is None:
        user_fields = list(User._meta.concrete_fields)
        token_fields = [ApiToken._meta.get_field(name) for name in _TOKEN_COLUMNS]
        columns = [f't."{f.column}"' for f in token_fields] + [f'u."{f.column}"' for f in user_fields]
        sql = (f'SELECT {", ".join(columns)} FROM "{ApiToken._meta.db_table}" t INNER JOIN '
               f'"{User._meta.db_table}" u ON (t."user_id" = u."id") WHERE t."key_hash" = %s '
               f'AND t."revoked_at" IS NULL')
        converters = []
        for position, field in enumerate([*token_fields, *user_fields]):
            funcs = connection.ops.get_db_converters(field.cached_col) + field.get_db_converters(connection)
            if funcs:
                converters.append((position, funcs, field.cached_col))
        lookup = _LOOKUPS[connection.vendor] = _Lookup(sql, [f.attname for f in user_fields], converters)
    return lookup


def token_with_user(key_hash: str) -> ApiToken | None:
    """The unrevoked token with this key hash (id, user and last_used_at loaded) and its user, or None.

    One query on every request, so a revocation takes effect on the next request. Written as SQL because the ORM
    compiling `select_related(...).filter(...).first()` cost more CPU than the database answering it, and run
    prepared (parsed and planned once per connection); the objects are built by `Model.from_db` from converted
    column values, as the ORM builds them.
    """
    lookup = _lookup()
    with prepared_cursor() as cursor:
        cursor.execute(lookup.sql, [key_hash])
        row = cursor.fetchone()
    if row is None:
        return None
    row = list(row)
    for position, funcs, column in lookup.converters:
        for func in funcs:
            row[position] = func(row[position], column, connection)
    n = len(_TOKEN_COLUMNS)
    user = User.from_db(connection.alias, lookup.user_columns, row[n:])
    token = ApiToken.from_db(connection.alias, _TOKEN_COLUMNS, row[:n])
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
