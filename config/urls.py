"""URLs: the REST API under /api/, the demo page under /demo/, Django admin under /admin/.
The WebSocket route lives in auth_service/routing.py."""

from django.contrib import admin
from django.urls import include, path

from auth_service import demo
from auth_service.api import errors

urlpatterns = [
    path("api/", include("auth_service.api.urls")),
    path("demo/", demo.demo_page, name="demo"),
    path("demo/demo_assets/<path:name>", demo.demo_asset, name="demo-asset"),
    path("admin/", admin.site.urls),
]

handler400 = errors.bad_request
handler404 = errors.page_not_found
handler500 = errors.server_error
