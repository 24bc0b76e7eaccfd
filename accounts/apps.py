"""App configuration for accounts."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Tenants, memberships and API tokens."""

    name = "accounts"
    verbose_name = "Accounts and tenants"
