from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "marketplace.billing"
    label = "billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from marketplace.billing import checks  # noqa: F401  (registers the configuration check)
