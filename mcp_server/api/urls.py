"""Routes of the REST API, mounted under /api/, with its OpenAPI schema and docs."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from mcp_server.api import schema  # noqa: F401 - registers the bearer-token OpenAPI scheme
from mcp_server.api.views.broadcasts import BroadcastView
from mcp_server.api.views.runs import (
    RunCancelView,
    RunDetailView,
    RunErrorDownloadView,
    RunErrorListView,
    RunListView,
)
from mcp_server.api.views.stats import StatsView
from mcp_server.api.views.tokens import TokenListCreateView, TokenRevokeView
from mcp_server.api.views.tools import ToolListView

app_name = "api"

urlpatterns = [
    path("runs/", RunListView.as_view(), name="run-list"),
    path("runs/<str:id>/", RunDetailView.as_view(), name="run-detail"),
    path("runs/<str:id>/errors/", RunErrorListView.as_view(), name="run-errors"),
    path("runs/<str:id>/errors.json", RunErrorDownloadView.as_view(), name="run-errors-download"),
    path("runs/<str:id>/cancel/", RunCancelView.as_view(), name="run-cancel"),
    path("tools/", ToolListView.as_view(), name="tool-list"),
    path("tokens/", TokenListCreateView.as_view(), name="token-list"),
    path("tokens/<str:id>/", TokenRevokeView.as_view(), name="token-revoke"),
    path("stats/", StatsView.as_view(), name="stats"),
    path("broadcasts/", BroadcastView.as_view(), name="broadcast"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]
