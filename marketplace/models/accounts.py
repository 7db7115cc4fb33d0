"""Users with one role each, and their API tokens (several per user, stored hashed)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q


class Role(models.TextChoices):
    CUSTOMER = "customer", "Customer"
    PROVIDER = "provider", "Provider member"
    OPERATOR = "operator", "Operator"


class User(AbstractUser):
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.CUSTOMER)
    provider = models.ForeignKey(
        "marketplace.Provider", null=True, blank=True, on_delete=models.PROTECT, related_name="members",
        help_text="The organisation a provider member belongs to.",
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(role=Role.PROVIDER, provider__isnull=False)
                           | (~Q(role=Role.PROVIDER) & Q(provider__isnull=True))),
                name="user_provider_member_has_provider",
                violation_error_message="Provider members belong to exactly one provider; other roles to none.",
            ),
        ]

    @property
    def is_operator(self) -> bool:
        return self.role == Role.OPERATOR or self.is_staff

    @property
    def is_provider_member(self) -> bool:
        return self.role == Role.PROVIDER and self.provider_id is not None


class ApiToken(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12,
                              help_text="First characters of the key, shown so people can tell tokens apart.")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
