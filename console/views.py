"""The console page and its login: Django's session auth, nothing of its own."""

from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView, LogoutView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache

LOGIN_URL = "console:login"  # a URL name: resolve_url turns it into a path


class ConsoleLoginView(LoginView):
    """Django's login form in the console's look; back to the console afterwards."""

    template_name = "console/login.html"
    redirect_authenticated_user = True
    next_page = "console:index"


class ConsoleLogoutView(LogoutView):
    """Log out (POST) and return to the login page."""

    next_page = LOGIN_URL


@never_cache
@login_required(login_url=LOGIN_URL)
def index(request: HttpRequest) -> HttpResponse:
    """The console: the page's script opens /mcp with the session cookie."""
    return render(
        request,
        "console/index.html",
        {
            "ws_path": "/mcp",
            "api_base": reverse("api:run-list").removesuffix("runs/"),
            "login_url": reverse("console:login"),
        },
    )
