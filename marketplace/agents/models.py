"""Provider agents: the broker's record of each reference agent a provider runs, with its shared secret.

The secret is kept in the clear because the broker needs it to sign its own requests to the agent (HMAC is
symmetric); protect the database accordingly. A rotation keeps the previous secret valid for a grace period.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class ProviderAgent(models.Model):
    provider = models.ForeignKey("marketplace.Provider", on_delete=models.CASCADE, related_name="agents")
    name = models.SlugField(max_length=64, default="default", help_text="Unique within the provider.")
    base_url = models.URLField(max_length=300, blank=True, help_text="Where the broker reaches the agent; set by "
                                                                     "the agent when it registers.")
    secret = models.CharField(max_length=200)
    previous_secret = models.CharField(max_length=200, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    secret_rotated_at = models.DateTimeField(null=True, blank=True)
    last_secret_used = models.CharField(max_length=8, blank=True,
                                        help_text="'current' or 'previous': which secret the agent last signed with.")
    enabled = models.BooleanField(default=True)
    offer = models.ForeignKey("marketplace.Offer", on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="agents", help_text="The offer the agent lists.")
    offer_unlisted_stale = models.BooleanField(
        default=False, help_text="The broker unlisted the agent's offer because the agent stopped reporting; the "
                                 "next registration lists it again.")
    slots = models.PositiveIntegerField(default=0)
    active_jobs = models.PositiveIntegerField(default=0)
    machine = models.JSONField(default=dict, blank=True, help_text="Facts the agent reported about its machine.")
    last_seen = models.DateTimeField(null=True, blank=True)
    registrations = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["provider_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "name"], name="agent_unique_provider_name"),
            models.CheckConstraint(condition=~Q(secret=""), name="agent_secret_not_empty"),
        ]

    def __str__(self) -> str:
        return self.key_id

    @property
    def key_id(self) -> str:
        return f"{self.provider.slug}/{self.name}"


class AgentNonce(models.Model):
    """Nonces of signed agent requests seen within the replay window; the unique constraint refuses a replay."""

    agent = models.ForeignKey(ProviderAgent, on_delete=models.CASCADE, related_name="nonces")
    nonce = models.CharField(max_length=64)
    seen_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["agent", "nonce"], name="agent_nonce_unique")]
        indexes = [models.Index(fields=["seen_at"], name="agent_nonce_seen_at")]

    def __str__(self) -> str:
        return f"{self.agent_id}:{self.nonce}"
