from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The web portal: server-rendered pages (Django templates + htmx) over the services and selectors."""

    name = "marketplace.portal"
    label = "portal"
    verbose_name = "Web portal"
