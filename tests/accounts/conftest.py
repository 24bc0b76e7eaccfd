import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from pytest_django.fixtures import Settings


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Settings) -> None:
    """The production hasher costs ~0.3 s per password; tests only need a working one."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def staff_client(db: None, client: Client) -> Client:
    """A client logged in as a superuser (no password round trip)."""
    admin = get_user_model().objects.create_superuser(
        username="root", email="root@example.com", password=None
    )
    client.force_login(admin)
    return client
