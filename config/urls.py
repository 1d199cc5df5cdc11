"""URLs: the REST API under /api/ (OpenAPI at /api/schema/, browsable at /api/docs/),
Prometheus metrics at /metrics, the demo page under /demo/, Django admin under /admin/.
The WebSocket route lives in auth_service/routing.py."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from auth_service import demo, metrics
from auth_service.api import errors, schema

urlpatterns = [
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path(f"{settings.STATIC_URL.strip('/')}/drf_spectacular_sidecar/<path:name>", schema.sidecar_asset),
    path("api/", include("auth_service.api.urls")),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("demo/", demo.demo_page, name="demo"),
    path("demo/demo_assets/<path:name>", demo.demo_asset, name="demo-asset"),
    path("admin/", admin.site.urls),
]

handler400 = errors.bad_request
handler404 = errors.page_not_found
handler500 = errors.server_error
