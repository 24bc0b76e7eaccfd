"""What one resources/read gives is bounded: error-log rows and directory entries by
MCP_RESOURCE_MAX_ENTRIES, a file's bytes by MCP_RESOURCE_MAX_BYTES; tenants stay apart."""

import json
from pathlib import Path

import pytest
from pytest_django.fixtures import Settings

from accounts.principal import Principal
from mcp_server.models import Operation, OperationError
from mcp_server.operations.lifecycle import OperationStatus
from mcp_server.protocol.errors import INVALID_PARAMS, JsonRpcError
from mcp_server.resources.data import complete_directory, read_directory
from mcp_server.resources.registry import ResourceNotFound
from mcp_server.resources.runs import errors_uri, read_errors, read_thumbnail
from tests.support import make_principal

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice() -> Principal:
    return make_principal("acme", "alice")


@pytest.fixture
def data_root(settings: Settings, tmp_path: Path) -> Path:
    settings.MCP_DATA_ROOT = tmp_path
    return tmp_path


def _run(principal: Principal, errors: int) -> Operation:
    run = Operation.objects.create(
        tenant_id=principal.tenant_id,
        user_id=principal.user_id,
        tool="process_images",
        status=OperationStatus.SUCCEEDED,
        error_count=errors,
    )
    OperationError.objects.bulk_create(
        OperationError(operation=run, item=f"item-{i}", message="bad") for i in range(errors)
    )
    return run


def test_an_error_log_read_gives_at_most_the_bound_and_says_so(
    alice: Principal, settings: Settings
) -> None:
    settings.MCP_RESOURCE_MAX_ENTRIES = 3
    run = _run(alice, errors=5)
    uri = errors_uri(run.pk)
    log = json.loads(read_errors(principal=alice, uri=uri, id=str(run.pk))[0]["text"])
    assert [row["item"] for row in log["errors"]] == ["item-0", "item-1", "item-2"]
    assert (log["truncated"], log["error_count"]) == (True, 5)
    assert log["download"] == f"/api/runs/{run.pk}/errors.json"
    bob = make_principal("other", "bob")
    with pytest.raises(ResourceNotFound):
        read_errors(principal=bob, uri=uri, id=str(run.pk))


def test_a_directory_listing_and_its_completions_are_bounded(
    alice: Principal, settings: Settings, data_root: Path
) -> None:
    settings.MCP_RESOURCE_MAX_ENTRIES = 4
    for n in range(10):
        (data_root / "acme" / "photos" / f"album-{n}").mkdir(parents=True)
    (data_root / "acme" / "photos" / ".hidden").mkdir()
    uri = "mcp-realtime://data/photos"
    listing = json.loads(read_directory(principal=alice, uri=uri, path="photos")[0]["text"])
    assert len(listing["directories"]) == 4 and listing["truncated"] is True
    found = complete_directory(principal=alice, value="photos/al", context={})
    assert len(found) == 4 and all(path.startswith("photos/album-") for path in found)
    assert complete_directory(principal=alice, value="../", context={}) == []
    (data_root / "other").mkdir()
    bob = make_principal("other", "bob")
    with pytest.raises(ResourceNotFound):
        read_directory(principal=bob, uri=uri, path="photos")


def test_a_thumbnail_over_the_byte_bound_is_refused(
    alice: Principal, settings: Settings, data_root: Path
) -> None:
    settings.MCP_RESOURCE_MAX_BYTES = 10
    run = _run(alice, errors=0)
    folder = data_root / "acme" / "thumbnails" / str(run.pk)
    folder.mkdir(parents=True)
    (folder / "big.png.jpg").write_bytes(b"x" * 11)
    (folder / "small.png.jpg").write_bytes(b"x" * 10)
    uri = f"mcp-realtime://runs/{run.pk}/thumbnails/small.png.jpg"
    blob = read_thumbnail(principal=alice, uri=uri, id=str(run.pk), name="small.png.jpg")
    assert blob[0]["blob"] == "eHh4eHh4eHh4eA=="
    with pytest.raises(JsonRpcError) as refused:
        read_thumbnail(principal=alice, uri=uri, id=str(run.pk), name="big.png.jpg")
    assert refused.value.code == INVALID_PARAMS
    for name in ("manifest.json", "..", "missing.jpg"):
        with pytest.raises(ResourceNotFound):
            read_thumbnail(principal=alice, uri=uri, id=str(run.pk), name=name)
