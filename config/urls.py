"""HTTP routes."""

from django.contrib import admin
from django.urls import include, path

from mcp_server.health import healthz, readyz
from mcp_server.metrics_endpoint import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="health"),
    path("readyz", readyz, name="ready"),
    path("metrics", metrics_view, name="metrics"),
    path("api/", include("mcp_server.api.urls")),
    path("", include("console.urls")),
]
