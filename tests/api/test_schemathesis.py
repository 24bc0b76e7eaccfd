"""Property-based run of every operation in the OpenAPI schema against the WSGI app.

Besides what schemathesis generates from the schema (valid and invalid values, every method),
a hook mixes crafted values into the query parameters that take them: cursors built the way
the server builds them but with members of any JSON kind and size, DRF cursor positions of any
text, page sizes of Unicode digits, and times whose offset pushes them out of what UTC or the
database can hold. No 5xx may come back for any of them.
"""

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
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
EXAMPLES_PER_OPERATION = 40

# JSON scalars at the edges: 64-bit bounds and past them, and texts that look like times.
_EDGE_INTEGERS = st.sampled_from([0, -1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, -(2**63)])
_TIMES = st.builds(
    "{:04d}-{:02d}-{:02d}T{:02d}:00:00{}".format,
    st.sampled_from([1, 2026, 9999]),
    st.sampled_from([1, 12]),
    st.sampled_from([1, 31]),
    st.sampled_from([0, 23]),
    st.sampled_from(["Z", "+00:00", "+01:00", "-23:00", "+23:59", "-16:00", ""]),
)
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), _EDGE_INTEGERS, st.floats(), st.text(), _TIMES
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=5,
)


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode("ascii")


# The runs list's cursor: {"o": ordering, "v": sort value, "k": uuid, "r": reverse}.
_KEYSET_CURSORS = st.fixed_dictionaries(
    {
        "o": st.sampled_from(["-created", "created", "-duration", "duration"]) | _JSON,
        "v": _JSON,
        "k": st.uuids().map(str) | _JSON,
        "r": st.booleans() | _JSON,
    }
).map(lambda data: _b64(json.dumps(data)))
# DRF's cursor (the error log and tokens): "o=offset&r=reverse&p=position", base64.
_POSITIONS = st.one_of(st.text(), _TIMES, _EDGE_INTEGERS.map(str), st.integers().map(str))
_DRF_CURSORS = st.builds(
    "o={}&r={}&p={}".format, st.sampled_from(["0", "1", "٣"]), st.sampled_from(["0", "1"]), _POSITIONS
).map(_b64)
_CRAFTED_QUERY = {
    "cursor": st.one_of(_KEYSET_CURSORS, _DRF_CURSORS, st.text()),
    "page_size": st.one_of(
        st.text(st.characters(categories=["Nd", "No", "Nl"]), min_size=1, max_size=3),
        _EDGE_INTEGERS.map(str),
    ),
    "created_after": _TIMES,
    "created_before": _TIMES,
    "finished_after": _TIMES,
    "finished_before": _TIMES,
    "since": _TIMES,
    "hours": _EDGE_INTEGERS.map(str),
}


@schema.hook
def flatmap_query(context: Any, query: dict[str, Any] | None) -> Any:
    """Mix crafted values into the generated query, for the parameters the operation takes."""
    crafted = {
        name: strategy
        for name, strategy in _CRAFTED_QUERY.items()
        if context.operation is not None and name in context.operation.query
    }
    if not crafted:
        return st.just(query)
    return st.fixed_dictionaries({}, optional=crafted).map(lambda extra: {**(query or {}), **extra})


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
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_schema(
    case: Any, alice: Caller, world: dict, settings: Any, keep_test_connection: None
) -> None:
    settings.MCP_API_RATE = ""
    headers = {"Authorization": f"Bearer {alice.issued.raw}"}
    response = case.call(headers=headers)
    case.validate_response(response, checks=CHECKS)
    if case.path_parameters and "id" in case.path_parameters:
        # and once more on an object that exists, so real bodies are checked too
        real = world["token_id"] if "/tokens/" in case.path else world["run_ids"][0]
        case.path_parameters = {**case.path_parameters, "id": real}
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS)
