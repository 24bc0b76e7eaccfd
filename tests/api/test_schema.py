import pytest
from drf_spectacular.validation import validate_schema

pytestmark = pytest.mark.django_db

PATHS = {
    "/api/runs/": {"get"},
    "/api/runs/{id}/": {"get"},
    "/api/runs/{id}/errors/": {"get"},
    "/api/runs/{id}/errors.json": {"get"},
    "/api/runs/{id}/cancel/": {"post"},
    "/api/tools/": {"get"},
    "/api/tokens/": {"get", "post"},
    "/api/tokens/{id}/": {"delete"},
    "/api/stats/": {"get"},
    "/api/broadcasts/": {"post"},
}


@pytest.fixture
def schema(client) -> dict:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_schema_is_valid_openapi_3_and_covers_every_endpoint(schema: dict):
    validate_schema(schema)
    assert schema["openapi"].startswith("3.")
    assert {path: set(ops) for path, ops in schema["paths"].items()} == PATHS
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["bearerAuth"]["description"],
    }


def test_every_operation_documents_auth_and_rate_limit_errors(schema: dict):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert {"401", "403", "429"} <= codes, (method, path)
            assert "Retry-After" in operation["responses"]["429"]["headers"]
            if "{id}" in path:
                assert "404" in codes, (method, path)


def test_runs_list_documents_filters_ordering_and_cursor(schema: dict):
    names = {p["name"] for p in schema["paths"]["/api/runs/"]["get"]["parameters"]}
    assert names >= {
        "tool",
        "status",
        "created_after",
        "created_before",
        "finished_after",
        "finished_before",
        "user",
        "username",
        "q",
        "ordering",
        "cursor",
        "page_size",
    }


def test_download_documents_the_attachment(schema: dict):
    ok = schema["paths"]["/api/runs/{id}/errors.json"]["get"]["responses"]["200"]
    assert "Content-Disposition" in ok["headers"]
    assert ok["content"]["application/json"]["schema"]["type"] == "array"


def test_cancel_documents_202_and_409(schema: dict):
    responses = schema["paths"]["/api/runs/{id}/cancel/"]["post"]["responses"]
    assert {"202", "409"} <= set(responses)


def test_docs_page_uses_local_assets(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower()
    asset = client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert asset.status_code == 200
