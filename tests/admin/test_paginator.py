import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mcp_server.admin import EstimatedCountPaginator
from mcp_server.models import Operation, OperationStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def operations(make_operation) -> None:
    for index in range(30):
        make_operation(status=OperationStatus.FAILED if index % 3 else OperationStatus.RUNNING)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE mcp_server_operation")


def _count(queryset, monkeypatch) -> tuple[int, list[str]]:
    monkeypatch.setattr(EstimatedCountPaginator, "estimate_threshold", 10)
    paginator = EstimatedCountPaginator(queryset, 10)
    with CaptureQueriesContext(connection) as captured:
        count = paginator.count
    return count, [query["sql"] for query in captured.captured_queries]


def test_unfiltered_count_is_estimated_on_postgresql_and_exact_elsewhere(
    operations: None, monkeypatch: pytest.MonkeyPatch
):
    count, sql = _count(Operation.objects.all(), monkeypatch)
    assert count == 30
    if connection.vendor == "postgresql":
        assert all("COUNT(" not in statement.upper() for statement in sql)
        assert any("reltuples" in statement for statement in sql)
    else:
        assert any("COUNT(" in statement.upper() for statement in sql)


def test_filtered_count_is_exact(operations: None, monkeypatch: pytest.MonkeyPatch):
    count, sql = _count(Operation.objects.filter(status=OperationStatus.RUNNING), monkeypatch)
    assert count == 10
    assert any("COUNT(" in statement.upper() for statement in sql)


def test_small_tables_are_counted_exactly(operations: None):
    paginator = EstimatedCountPaginator(Operation.objects.all(), 10)
    assert paginator.count == 30
    assert paginator.num_pages == 3
