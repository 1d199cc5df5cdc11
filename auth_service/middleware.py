"""CORS for the REST API, so the demo page (file:// or another port) and client web apps
can call it from a browser. Only /api/ is covered; no cookies are involved (bearer tokens),
so credentials are never allowed."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from auth_service.origins import origin_allowed

ALLOWED_METHODS = "GET, POST, DELETE, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type"
PREFLIGHT_MAX_AGE = "600"


class CorsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        origin = request.headers.get("Origin")
        if not request.path.startswith("/api/") or origin is None:
            return self.get_response(request)
        allowed = origin_allowed(origin, host=request.META.get("HTTP_HOST"))
        is_preflight = (
            request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
        )
        response = HttpResponse(status=204) if is_preflight else self.get_response(request)
        response.headers["Vary"] = ", ".join(
            filter(None, [response.headers.get("Vary"), "Origin"])
        )
        if allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            if is_preflight:
                response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
                response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
                response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
        return response
