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
from hypothesis import HealthCheck, given
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
# Per operation, beside schemathesis's coverage phase; the crafted test below is the one that
# hunts crafted values. Both are derandomized (the same cases every run); the file takes ~10 s.
EXAMPLES_PER_OPERATION = 12
CRAFTED_EXAMPLES = 300
DEEP = 100_000

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
    st.none(), st.booleans(), _EDGE_INTEGERS, st.integers(), st.floats(), st.text(), _TIMES
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=4,
)
_ORDERINGS = ["-created", "created", "-duration", "duration"]


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode("ascii")


def keyset_cursors(ordering: str) -> st.SearchStrategy[str]:
    """Runs-list cursors ({"o", "v", "k", "r"}, as the server writes them) with any members."""
    return st.fixed_dictionaries(
        {
            "o": st.just(ordering) | _JSON,
            "v": _TIMES | _EDGE_INTEGERS | _JSON,
            "k": st.uuids().map(str) | _JSON,
            "r": st.booleans() | _JSON,
        }
    ).map(lambda data: _b64(json.dumps(data)))


# DRF's cursors (error log, tokens): "o=offset&r=reverse&p=position", base64, any position.
_DRF_CURSORS = st.builds(
    "o={}&r={}&p={}".format,
    st.sampled_from(["0", "1", "٣"]),
    st.sampled_from(["0", "1"]),
    st.one_of(st.text(), _TIMES, _EDGE_INTEGERS.map(str), st.integers().map(str)),
).map(_b64)
_PAGE_SIZES = st.one_of(
    st.text(st.characters(categories=["Nd", "No", "Nl"]), min_size=1, max_size=3),
    _EDGE_INTEGERS.map(str),
)


def crafted_value(name: str, ordering: str) -> st.SearchStrategy[str]:
    """Values for query parameter `name` that a client could craft to break the server."""
    if name == "cursor":
        return st.one_of(keyset_cursors(ordering), _DRF_CURSORS, st.text())
    if name == "page_size":
        return _PAGE_SIZES
    if name == "hours":
        return _EDGE_INTEGERS.map(str)
    return _TIMES  # created_*, finished_*, since


CRAFTED_PARAMETERS = (
    "cursor",
    "page_size",
    "created_after",
    "created_before",
    "finished_after",
    "finished_before",
    "since",
    "hours",
)


@schema.hook
def flatmap_query(context: Any, query: dict[str, Any] | None) -> Any:
    """Now and then, one query parameter the operation takes gets a crafted value instead."""
    names = [
        name
        for name in CRAFTED_PARAMETERS
        if context.operation is not None and name in context.operation.query
    ]
    if not names:
        return st.just(query)
    query = query or {}
    ordering = query.get("ordering")
    ordering = ordering if isinstance(ordering, str) else "-created"
    return st.sampled_from([None, *names]).flatmap(
        lambda name: (
            st.just(query)
            if name is None
            else crafted_value(name, ordering).map(lambda value: {**query, name: value})
        )
    )


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
def world(alice: Caller, make_run: MakeRun, settings: Any) -> dict:
    """Runs of several kinds, an error log, a spare token to revoke, and alice on the staff.

    Alice is staff so that POST /api/broadcasts/ is run for real (on the in-memory layer).
    """
    settings.MCP_API_REQUESTS_PER_MINUTE_USER = 0  # 0: no REST budget in the way
    settings.MCP_API_REQUESTS_PER_MINUTE_TENANT = 0
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    alice.user.is_staff = True
    alice.user.save(update_fields=["is_staff"])
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
    case: Any, alice: Caller, world: dict, keep_test_connection: None
) -> None:
    headers = {"Authorization": f"Bearer {alice.issued.raw}"}
    response = case.call(headers=headers)
    case.validate_response(response, checks=CHECKS)
    if case.path_parameters and "id" in case.path_parameters:
        # and once more on an object that exists, so real bodies are checked too
        real = world["token_id"] if "/tokens/" in case.path else world["run_ids"][0]
        case.path_parameters = {**case.path_parameters, "id": real}
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS)


# The GET operations with query parameters, and those of their parameters worth crafting.
_QUERIES = {
    "/api/runs/": [name for name in CRAFTED_PARAMETERS if name not in ("since", "hours")],
    "/api/runs/{run}/errors/": ["cursor", "page_size"],
    "/api/tokens/": ["cursor", "page_size"],
    "/api/stats/": ["since", "hours"],
}
_BODIES = st.one_of(
    _JSON.map(json.dumps),
    st.integers(1, DEEP).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(1, DEEP).map(lambda depth: '{"a":' * depth + "1" + "}" * depth),
    st.text(),
)


@pytest.mark.django_db
@given(data=st.data())
@hypothesis_settings(
    max_examples=CRAFTED_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_crafted_queries_and_bodies_are_never_a_server_error(
    data: st.DataObject, alice: Caller, world: dict
) -> None:
    """Every listing, with one crafted parameter, or a crafted JSON body: never a 5xx."""
    client = alice.client
    client.raise_request_exception = False
    if data.draw(st.booleans(), label="post a body"):
        url = data.draw(st.sampled_from(["/api/tokens/", "/api/broadcasts/"]), label="url")
        body = data.draw(_BODIES, label="body")
        response = client.post(url, body, content_type="application/json")
    else:
        route = data.draw(st.sampled_from(sorted(_QUERIES)), label="route")
        url = route.format(run=world["run_ids"][0])
        name = data.draw(st.sampled_from(_QUERIES[route]), label="parameter")
        query: dict[str, str] = {}
        if route == "/api/runs/":
            query["ordering"] = data.draw(st.sampled_from(_ORDERINGS), label="ordering")
        query[name] = data.draw(crafted_value(name, query.get("ordering", "")), label="value")
        response = client.get(url, query)
    assert response.status_code < 500, (url, response.status_code, response.content[:300])
