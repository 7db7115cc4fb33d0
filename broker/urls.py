from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("marketplace.api.urls")),
    path("api/v1/", include("marketplace.api.recommendation_urls")),
    path("api/v1/", include("marketplace.orders.urls")),
    path("api/v1/", include("marketplace.billing.urls")),
    path("api/v1/", include("marketplace.agents.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("", include("marketplace.ops.urls")),  # /healthz /readyz /metrics (not API: outside the schema)
    path("", include("marketplace.portal.urls")),
]

handler404 = "marketplace.api.errors.not_found"  # under /api/: the one error shape, not an HTML page
handler500 = "marketplace.api.errors.server_error"
