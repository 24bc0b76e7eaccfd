"""`manage.py bootstrap_demo`: a demo tenant, user and token for a first local run."""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from accounts.models import ApiToken, Tenant
from accounts.services import tenant_create, token_create, user_create

DEMO_TENANT = "demo"
DEMO_USER = "demo"
DEMO_TOKEN_NAME = "demo"


class Command(BaseCommand):
    """Create the demo tenant, user and token once; print the token the first time only."""

    help = "Create a demo tenant, user and API token if absent (token printed once)."

    def handle(self, *args: Any, **options: Any) -> None:
        """Create what is missing."""
        if not Tenant.objects.filter(slug=DEMO_TENANT).exists():
            tenant_create(slug=DEMO_TENANT, name="Demo tenant")
        user: Any = get_user_model().objects.filter(username=DEMO_USER).first()
        if user is None:
            user = user_create(username=DEMO_USER, tenant_slug=DEMO_TENANT, tenant_admin=True)
        if ApiToken.objects.filter(user=user, name=DEMO_TOKEN_NAME).exists():
            self.stdout.write(
                "Demo token already issued (it is shown only once). "
                f"Make another with: python manage.py createtoken {DEMO_USER}"
            )
            return
        issued = token_create(user=user, name=DEMO_TOKEN_NAME)
        self.stdout.write(
            f"Demo tenant {DEMO_TENANT!r}, user {DEMO_USER!r}. Your API token (shown once):"
        )
        self.stdout.write(f"\n    {issued.raw}\n")
        self.stdout.write(f"Connect: ws://127.0.0.1:8000/mcp?token={issued.raw}")
