from django.contrib import admin
from django.template.response import TemplateResponse

from marketplace.agents.models import AgentNonce, ProviderAgent
from marketplace.agents.services import DEFAULT_GRACE_S, agent_rotate_secret


def _rotate(modeladmin, request, queryset, *, grace_s: int) -> TemplateResponse:
    """Rotate each selected agent's secret and show the new ones on this response only (never stored in a
    message or cookie); give each to its agent (AGENT_SECRET) and restart it."""
    rotated = [(agent, agent_rotate_secret(agent_id=agent.pk, grace_s=grace_s))
               for agent in queryset.select_related("provider").order_by("id")]
    for agent, _ in rotated:
        modeladmin.log_change(request, agent, f"rotated the secret (the old one valid for {grace_s} s more)")
    response = TemplateResponse(request, "admin/agents/rotated.html", {
        **modeladmin.admin_site.each_context(request), "title": "New agent secrets", "rotated": rotated,
        "grace_s": grace_s, "opts": modeladmin.model._meta})
    response["Cache-Control"] = "no-store"
    return response


@admin.action(description="Rotate secret NOW: the old secret stops working at once (leaked secret)")
def rotate_secret_now(modeladmin, request, queryset) -> TemplateResponse:
    return _rotate(modeladmin, request, queryset, grace_s=0)


@admin.action(description=f"Rotate secret; the old one keeps working for {DEFAULT_GRACE_S // 60} minutes")
def rotate_secret_with_grace(modeladmin, request, queryset) -> TemplateResponse:
    return _rotate(modeladmin, request, queryset, grace_s=DEFAULT_GRACE_S)


@admin.register(ProviderAgent)
class ProviderAgentAdmin(admin.ModelAdmin):
    """Secrets are never shown in the change pages; the rotation actions show a new secret once, on their answer.
    Enrol through the API or `manage.py agent_enroll`."""

    actions = [rotate_secret_now, rotate_secret_with_grace]

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
