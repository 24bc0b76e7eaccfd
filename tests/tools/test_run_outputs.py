"""`delete_run_thumbnails`: asks first, deletes only on a confirmation, only the caller's runs;
in both eras (a request to the client, or an input-required round)."""

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from pytest_django.fixtures import Settings

from accounts.principal import Principal
from mcp_server.models import Operation
from mcp_server.operations.lifecycle import OperationStatus
from mcp_server.protocol.input_required import InputRequired
from mcp_server.tools.builtin.images import THUMBNAILS_DIR
from mcp_server.tools.builtin.run_outputs import CONFIRM_KEY
from mcp_server.tools.testing import ToolHarness
from tests.support import make_principal

pytestmark = pytest.mark.django_db(transaction=True)

CONFIRMED = {"action": "accept", "content": {"confirm": True}}


@pytest.fixture(autouse=True)
def data_root(settings: Settings, tmp_path: Path) -> Path:
    settings.MCP_DATA_ROOT = tmp_path
    return tmp_path


@database_sync_to_async
def _people() -> tuple[Principal, Principal, Principal]:
    """Alice; Bob, an admin of her tenant (he may read her runs); Carol of another tenant."""
    bob = dataclasses.replace(make_principal("acme", "bob"), is_tenant_admin=True)
    return make_principal("acme", "alice"), bob, make_principal("other", "carol")


@database_sync_to_async
def _run_with_thumbnails(owner: Principal, root: Path, count: int) -> Path:
    run = Operation.objects.create(
        tenant_id=owner.tenant_id,
        user_id=owner.user_id,
        tool="process_images",
        status=OperationStatus.SUCCEEDED,
    )
    directory = root / owner.tenant_slug / THUMBNAILS_DIR / str(run.pk)
    directory.mkdir(parents=True)
    for index in range(count):
        (directory / f"img-{index}.png.jpg").write_bytes(b"jpeg")
    (directory / "manifest.json").write_bytes(b"[]")
    return directory


def _structured(result: dict[str, Any]) -> dict[str, Any]:
    assert not result.get("isError"), result
    return dict(result["structuredContent"])


async def test_on_2026_it_asks_first_and_deletes_on_confirmation(data_root: Path) -> None:
    alice, *_ = await _people()
    directory = await _run_with_thumbnails(alice, data_root, 3)
    harness = ToolHarness("delete_run_thumbnails", principal=alice)
    arguments = {"run_id": directory.name}
    with pytest.raises(InputRequired) as asked:
        await harness.call(arguments, answers={})
    question = asked.value.requests[CONFIRM_KEY]
    assert question.method == "elicitation/create"
    assert "3 thumbnails" in question.params["message"]
    assert directory.is_dir()  # asking changed nothing

    done = _structured(await harness.call(arguments, answers={CONFIRM_KEY: CONFIRMED}))
    assert done == {"run": directory.name, "deleted": 3, "outcome": "deleted"}
    assert not directory.exists()


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        ({"action": "decline"}, "declined"),
        ({"action": "cancel"}, "cancelled"),
        ({"action": "accept", "content": {"confirm": False}}, "declined"),
    ],
)
async def test_a_decline_or_cancel_deletes_nothing(
    data_root: Path, answer: dict[str, Any], outcome: str
) -> None:
    alice, *_ = await _people()
    directory = await _run_with_thumbnails(alice, data_root, 2)
    harness = ToolHarness("delete_run_thumbnails", principal=alice)
    result = await harness.call({"run_id": directory.name}, answers={CONFIRM_KEY: answer})
    assert _structured(result) == {"run": directory.name, "deleted": 0, "outcome": outcome}
    assert len(list(directory.iterdir())) == 3


async def test_another_users_run_is_exactly_an_unknown_one(data_root: Path) -> None:
    alice, tenant_admin, carol = await _people()
    directory = await _run_with_thumbnails(alice, data_root, 1)
    texts = []
    for caller, run_id in (
        (tenant_admin, directory.name),  # same tenant, and may read it: still not theirs
        (carol, directory.name),
        (alice, "00000000-0000-0000-0000-000000000000"),
    ):
        harness = ToolHarness("delete_run_thumbnails", principal=caller)
        result = await harness.call({"run_id": run_id}, answers={CONFIRM_KEY: CONFIRMED})
        assert result["isError"] is True
        texts.append(result["content"][0]["text"].replace(run_id, "<id>"))
    assert len(set(texts)) == 1 and texts[0] == "Unknown run: <id>"
    assert directory.is_dir()


async def test_a_run_without_thumbnails_asks_nothing(data_root: Path) -> None:
    alice, *_ = await _people()
    directory = await _run_with_thumbnails(alice, data_root, 0)
    for child in directory.iterdir():
        child.unlink()
    directory.rmdir()
    harness = ToolHarness("delete_run_thumbnails", principal=alice)
    result = await harness.call({"run_id": directory.name}, answers={})
    assert _structured(result)["outcome"] == "nothing to delete"


async def test_in_the_handshake_era_without_a_client_it_is_a_tool_error(data_root: Path) -> None:
    alice, *_ = await _people()
    directory = await _run_with_thumbnails(alice, data_root, 1)
    result = await ToolHarness("delete_run_thumbnails", principal=alice).call(
        {"run_id": directory.name}
    )
    assert result["isError"] is True
    assert "cannot ask the client" in result["content"][0]["text"]
    assert directory.is_dir()
