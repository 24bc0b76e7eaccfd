"""A tenant's new limits, saved through the service the admin uses, reach an open connection
on the other web process: a lowered in-flight bound refuses its next call (-32001), a raised
one admits it again; a lowered connection cap refuses the next handshake and leaves open
connections alone."""

import secrets
import time
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from tests.cluster.support import WAIT, Cluster, start_long_call
from tests.e2e.support import (
    RawClient,
    raw_client,
    raw_connection,
    result_of,
    tenant_command,
    token_command,
    user_command,
)

LIMIT_EXCEEDED = -32001


def _set_limits(cluster: Cluster, slug: str, **limits: int | None) -> None:
    """Change the tenant's limit overrides through the service the admin saves with."""
    assignments = "; ".join(f"tenant.{field} = {value!r}" for field, value in limits.items())
    cluster.deployment.shell(
        "from accounts.models import Tenant; from accounts.services import tenant_update; "
        f"tenant = Tenant.objects.get(slug={slug!r}); {assignments}; "
        f"tenant_update(tenant=tenant, changed={list(limits)!r})"
    )


async def _add(client: RawClient) -> dict[str, Any]:
    return dict(await client.call_tool("add", {"a": 2, "b": 3}))


async def _until(client: RawClient, refused: bool) -> dict[str, Any]:
    """Call `add` until it is refused over the in-flight bound (or admitted): the change
    arrives within the access round; WAIT bounds the wait."""
    deadline = time.monotonic() + WAIT
    while True:
        response = await _add(client)
        if ("error" in response and response["error"]["code"] == LIMIT_EXCEEDED) == refused:
            return response
        assert time.monotonic() < deadline, f"limits did not change within {WAIT} s: {response}"


async def test_new_limits_reach_an_open_connection_on_the_other_web_process(
    cluster: Cluster,
) -> None:
    slug = f"limits-{secrets.token_hex(3)}"
    deployment = cluster.deployment
    *_, token = deployment.run_together(
        [
            tenant_command(slug),
            user_command(f"{slug}-a", slug),
            token_command(f"{slug}-a", name=f"{slug}-a"),
        ]
    )
    web1 = cluster.web[1]
    async with raw_client(web1, token) as client:
        await start_long_call(client, "long")  # holds one place in flight
        assert result_of(await _add(client))["structuredContent"] == {"result": 5}

        _set_limits(cluster, slug, limit_in_flight_per_connection=1)
        refused = (await _until(client, refused=True))["error"]
        assert refused["data"] == {
            "limit": "in_flight_per_connection",
            "scope": "connection",
            "maximum": 1,
        }

        _set_limits(cluster, slug, limit_in_flight_per_connection=3)
        admitted = await _until(client, refused=False)
        assert result_of(admitted)["structuredContent"] == {"result": 5}

        # Connection caps are read at the handshake: the next one is refused at once, the
        # open connection goes on.
        _set_limits(cluster, slug, limit_connections_per_user=1)
        with pytest.raises(InvalidStatus) as caught:
            async with raw_connection(web1.ws_url(token)):
                pass
        assert caught.value.response.status_code == 429
        result_of(await client.request("ping"))
