"""HTTP routes."""

from django.contrib import admin
from django.urls import include, path

from mcp_server.health import healthz, readyz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="health"),
    path("readyz", readyz, name="ready"),
    path("api/", include("mcp_server.api.urls")),
    path("", include("console.urls")),
]
