"""App configuration for accounts."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Tenants, memberships and API tokens."""

    name = "accounts"
    verbose_name = "Accounts and tenants"

    def ready(self) -> None:
        """Announce access taken away through the stock user admin and token deletions too."""
        from accounts.access_changes import connect_receivers

        connect_receivers()
