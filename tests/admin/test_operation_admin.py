import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from mcp_server import admin as history_admin
from mcp_server.models import Operation, OperationStatus
from tests.admin.conftest import log_errors
from tests.support import runtime_installed

pytestmark = pytest.mark.django_db

LIST = "/admin/mcp_server/operation/"


def _detail(operation: Operation) -> str:
    return reverse("admin:mcp_server_operation_change", args=[operation.pk])


def test_list_renders_with_columns(superuser_client: Client, make_operation):
    make_operation(progress=5, total=10, status=OperationStatus.RUNNING)
    make_operation(tool="sleep", duration=timedelta(seconds=3))
    response = superuser_client.get(LIST)
    assert response.status_code == 200
    html = response.content.decode()
    for text in ("50 %", "3.00 s", "alice", "acme", "sleep", "Running"):
        assert text in html
    assert "Cancel selected running operations" in html
    assert "Delete selected" not in html
    assert "Add operation" not in html


def test_list_queries_do_not_grow_with_rows(
    superuser_client: Client, make_operation, django_assert_max_num_queries
):
    for _ in range(5):
        make_operation()
    with django_assert_max_num_queries(12) as few:
        superuser_client.get(LIST)
    for _ in range(60):
        make_operation()
    with django_assert_max_num_queries(len(few.captured_queries)):
        superuser_client.get(LIST)


@pytest.mark.parametrize(
    "query",
    [
        "?status__exact=failed",
        "?tool=sleep",
        "?tenant__id__exact=1",
        "?queued_at__year=2024",
        "?q=sleep",
        "?q=alice",
        "?q=not-a-uuid-at-all",
        "?o=7",
    ],
)
def test_filters_search_and_hierarchy(superuser_client: Client, make_operation, query: str):
    make_operation(tool="sleep", status=OperationStatus.FAILED)
    assert superuser_client.get(LIST + query).status_code == 200


def test_filter_by_tool_and_status(superuser_client: Client, make_operation):
    wanted = make_operation(tool="sleep", status=OperationStatus.FAILED)
    other = make_operation(tool="echo")
    html = superuser_client.get(LIST + "?tool=sleep&status__exact=failed").content.decode()
    assert _detail(wanted) in html
    assert _detail(other) not in html


def test_search_by_id(superuser_client: Client, make_operation):
    wanted = make_operation()
    other = make_operation()
    html = superuser_client.get(LIST, {"q": str(wanted.pk)}).content.decode()
    assert _detail(wanted) in html
    assert _detail(other) not in html


def test_detail_is_read_only_with_pretty_json(superuser_client: Client, make_operation):
    operation = make_operation(result_summary={"b": 1, "a": [1, 2]})
    response = superuser_client.get(_detail(operation))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<pre" in html
    assert "&quot;text&quot;: &quot;hello &lt;b&gt;world&lt;/b&gt;&quot;" in html  # escaped
    assert "&quot;a&quot;: [\n    1,\n    2\n  ]," in html  # indented, sorted
    assert 'name="_save"' not in html
    assert "No item errors." in html
    post = superuser_client.post(_detail(operation), {"tool": "hacked"})
    assert post.status_code == 403
    assert Operation.objects.get(pk=operation.pk).tool == "echo"


def test_add_and_delete_are_refused(superuser_client: Client, make_operation):
    operation = make_operation()
    assert superuser_client.get(LIST + "add/").status_code == 403
    delete = reverse("admin:mcp_server_operation_delete", args=[operation.pk])
    assert superuser_client.post(delete, {"post": "yes"}).status_code == 403
    assert Operation.objects.filter(pk=operation.pk).exists()


def test_detail_shows_only_the_first_item_errors_with_links(
    superuser_client: Client, make_operation
):
    operation = make_operation()
    log_errors(operation, history_admin.INLINE_ERROR_LIMIT + 200)
    response = superuser_client.get(_detail(operation))
    html = response.content.decode()
    assert "item-0<" in html
    assert f"item-{history_admin.INLINE_ERROR_LIMIT - 1}<" in html
    assert f"item-{history_admin.INLINE_ERROR_LIMIT}<" not in html
    download = reverse("admin:mcp_server_operation_errors_download", args=[operation.pk])
    assert download in html
    full_list = f"/admin/mcp_server/operationerror/?operation__id__exact={operation.pk}"
    assert full_list in html
    other = make_operation()
    log_errors(other, 3)
    listing = superuser_client.get(full_list)
    assert listing.status_code == 200
    page_one = listing.content.decode()
    assert "item-99<" in page_one  # 100 a page, by id
    assert "item-100<" not in page_one
    assert page_one.count("item-0<") == 1  # the other operation's errors are filtered out
    page_two = superuser_client.get(full_list + "&p=2").content.decode()
    assert "item-149<" in page_two


def test_admin_download_streams_the_whole_log(superuser_client: Client, make_operation):
    operation = make_operation()
    log_errors(operation, 120)
    url = reverse("admin:mcp_server_operation_errors_download", args=[operation.pk])
    response: Any = superuser_client.get(url)
    assert response.status_code == 200
    assert response.streaming
    assert "attachment" in response["Content-Disposition"]
    assert len(json.loads(b"".join(response.streaming_content))) == 120
    assert superuser_client.get(url.replace(str(operation.pk), "nope")).status_code == 404


def test_view_only_staff_can_browse_but_not_cancel(viewer_client: Client, make_operation):
    operation = make_operation(status=OperationStatus.RUNNING)
    assert viewer_client.get(LIST).status_code == 200
    assert viewer_client.get(_detail(operation)).status_code == 200
    assert "Cancel selected" not in viewer_client.get(LIST).content.decode()


@pytest.mark.parametrize("kind", ["anonymous", "member", "staff_without_permissions"])
def test_others_are_refused(member, make_operation, kind: str):
    operation = make_operation()
    client = Client()
    if kind == "member":
        client.force_login(member)
    elif kind == "staff_without_permissions":
        client.force_login(get_user_model().objects.create_user("staffer", is_staff=True))
    download = reverse("admin:mcp_server_operation_errors_download", args=[operation.pk])
    for url in (LIST, _detail(operation), download):
        response = client.get(url)
        if kind == "staff_without_permissions":
            assert response.status_code == 403, url
        else:
            assert response.status_code == 302, url
            assert "/admin/login/" in response["Location"]


class StubRunner:
    def __init__(self, running: set) -> None:
        self.running = running
        self.cancelled: list = []

    def cancel(self, operation_id, reason=None) -> bool:
        if operation_id in self.running:
            self.cancelled.append(operation_id)
            return True
        return False


def test_cancel_action(superuser_client: Client, make_operation):
    here = make_operation(status=OperationStatus.RUNNING)
    queued = make_operation(status=OperationStatus.QUEUED)
    elsewhere = make_operation(status=OperationStatus.RUNNING)
    done = make_operation(status=OperationStatus.SUCCEEDED)
    runner = StubRunner({here.pk, queued.pk})
    with runtime_installed(runner):
        response = superuser_client.post(
            LIST,
            {
                "action": "cancel_operations",
                "_selected_action": [str(op.pk) for op in (here, queued, elsewhere, done)],
                "index": 0,
            },
            follow=True,
        )
    assert response.status_code == 200
    assert sorted(map(str, runner.cancelled)) == sorted([str(here.pk), str(queued.pk)])
    html = response.content.decode()
    # The one running elsewhere is cancelled through the cluster (recorded in history).
    assert "Cancelling 3 operation(s)." in html
    elsewhere.refresh_from_db()
    assert elsewhere.cancel_requested
    assert "1 operation(s) had already finished." in html


def test_detail_shows_what_a_waiting_task_asks(superuser_client: Client, make_operation):
    asked = {"confirm": {"method": "elicitation/create", "params": {"message": "Delete it?"}}}
    waiting = make_operation(status=OperationStatus.RUNNING, is_task=True, input_requests=asked)
    html = superuser_client.get(_detail(waiting)).content.decode()
    assert "waiting for answers to" in html.lower()
    assert "&quot;message&quot;: &quot;Delete it?&quot;" in html
    ended = superuser_client.get(_detail(make_operation())).content.decode()
    assert "Nothing." in ended
