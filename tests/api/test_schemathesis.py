"""Property-based run of every operation in the OpenAPI schema against the WSGI app."""

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.services import token_create
from mcp_server.models import OperationError, OperationStatus
from tests.api.conftest import Caller, MakeRun

schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def keep_test_connection() -> Iterator[None]:
    """The WSGI app closes connections at request end; the test's transaction must survive.

    django.test.Client does the same: it disconnects close_old_connections for its requests.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def world(alice: Caller, make_run: MakeRun) -> dict:
    """Runs of several kinds, an error log, and a spare token to revoke."""
    finished = make_run(alice, result_summary={"ok": True}, error_count=2)
    OperationError.objects.create(operation=finished, item="a", message="bad")
    OperationError.objects.create(operation=finished, item="b", message="worse")
    running = make_run(alice, status=OperationStatus.RUNNING, progress=1, total=3)
    spare = token_create(user=alice.user, name="spare").token
    return {"run_ids": [str(finished.pk), str(running.pk)], "token_id": spare.pk}


@pytest.mark.django_db
@schema.parametrize()
@hypothesis_settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_schema(
    case: Any, alice: Caller, world: dict, settings: Any, keep_test_connection: None
) -> None:
    settings.MCP_API_REQUESTS_PER_MINUTE_USER = 0
    settings.MCP_API_REQUESTS_PER_MINUTE_TENANT = 0
    headers = {"Authorization": f"Bearer {alice.issued.raw}"}
    response = case.call(headers=headers)
    case.validate_response(response, checks=CHECKS)
    if case.path_parameters and "id" in case.path_parameters:
        # and once more on an object that exists, so real bodies are checked too
        real = world["token_id"] if "/tokens/" in case.path else world["run_ids"][0]
        case.path_parameters = {**case.path_parameters, "id": real}
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS)
