"""API token lifecycle: create (the key is shown once), revoke."""

from __future__ import annotations

import hashlib
import secrets

from django.db import transaction
from django.utils import timezone

from marketplace.errors import NotFoundError
from marketplace.models import ApiToken, User

MAX_ACTIVE_TOKENS = 20


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@transaction.atomic
def token_create(*, user: User, name: str) -> tuple[ApiToken, str]:
    from marketplace.errors import ValidationFailed

    User.objects.select_for_update().filter(pk=user.pk).first()
    if ApiToken.objects.filter(user=user, revoked_at__isnull=True).count() >= MAX_ACTIVE_TOKENS:
        raise ValidationFailed(f"At most {MAX_ACTIVE_TOKENS} active tokens per user; revoke one first.",
                               fields={"name": ["too many active tokens"]}, code="too_many_tokens")
    key = "cb_" + secrets.token_urlsafe(30)
    token = ApiToken.objects.create(user=user, name=name, prefix=key[:10], key_hash=hash_key(key))
    return token, key


@transaction.atomic
def token_revoke(*, user: User, token_id: int) -> ApiToken:
    token = ApiToken.objects.select_for_update().filter(pk=token_id, user=user).first()
    if token is None:
        raise NotFoundError("No such token.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token
