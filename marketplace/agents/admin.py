from django.contrib import admin

from marketplace.agents.models import AgentNonce, ProviderAgent


@admin.register(ProviderAgent)
class ProviderAgentAdmin(admin.ModelAdmin):
    """Secrets are never shown here: enrol and rotate through the API or `manage.py agent_enroll`."""

    list_display = ("__str__", "base_url", "enabled", "offer", "slots", "active_jobs", "last_seen",
                    "offer_unlisted_stale", "secret_rotated_at")
    list_filter = ("enabled", "offer_unlisted_stale")
    search_fields = ("provider__slug", "name", "base_url")
    exclude = ("secret", "previous_secret")
    readonly_fields = ("base_url", "offer", "slots", "active_jobs", "machine", "last_seen", "registrations",
                       "previous_secret_expires_at", "secret_rotated_at", "last_secret_used", "offer_unlisted_stale")

    def has_add_permission(self, request) -> bool:
        return False  # an agent needs a secret: `manage.py agent_enroll` or POST /api/v1/agents/


@admin.register(AgentNonce)
class AgentNonceAdmin(admin.ModelAdmin):
    list_display = ("id", "agent", "nonce", "seen_at")
    search_fields = ("nonce", "agent__provider__slug")
    raw_id_fields = ("agent",)
