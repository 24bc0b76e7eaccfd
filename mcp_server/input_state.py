"""The sealed `requestState` of an input-required result, and the round a retry resumes.

The state carries the answers the client gave in earlier rounds, so a retry resumes on any
web process with no memory of the first. It is signed (HMAC-SHA256, `django.core.signing`,
under SECRET_KEY, which every process shares, with a salt of its own), not encrypted: all it
holds is what this client itself answered, so only its integrity matters. It is bound to the
caller (tenant and user), to what was asked for (tool, prompt or resource by kind and name)
and to a digest of the request's arguments, and expires after MCP_INPUT_STATE_TTL seconds.
State that fails any of those is refused with -32602 before anything runs.
"""

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson
from django.conf import settings
from django.core import signing

from accounts.principal import Principal
from mcp_server.protocol.errors import JsonRpcError, invalid_params
from mcp_server.protocol.input_required import InputRound, input_responses, request_state

_SALT = "mcp_server.input_state"


class StateBinding:
    """What a request state belongs to: who asked, for what, with which arguments.

    The arguments' digest is made only when a state is sealed or opened, so a 2026-07-28 call
    that never asks pays nothing for it.
    """

    __slots__ = ("_arguments", "_digest", "kind", "name", "tenant_id", "user_id")

    def __init__(
        self, tenant_id: int, user_id: int, kind: str, name: str, arguments: Mapping[str, Any]
    ) -> None:
        self.tenant_id, self.user_id = tenant_id, user_id
        self.kind = kind  # "tool", "prompt" or "resource"
        self.name = name
        self._arguments = arguments
        self._digest: str | None = None

    @classmethod
    def of(
        cls, principal: Principal, kind: str, name: str, arguments: Mapping[str, Any]
    ) -> "StateBinding":
        """The binding of a request by `principal` for `kind` `name` with `arguments`."""
        return cls(principal.tenant_id, principal.user_id, kind, name, arguments)

    def as_list(self) -> list[Any]:
        """The binding as the signed payload holds it."""
        if self._digest is None:
            canonical = orjson.dumps(self._arguments, option=orjson.OPT_SORT_KEYS)
            self._digest = hashlib.sha256(canonical).hexdigest()
        return [self.tenant_id, self.user_id, self.kind, self.name, self._digest]


def seal(binding: StateBinding, answers: dict[str, Any]) -> str:
    """A request state holding `answers`, bound to `binding`, signed and timestamped."""
    return signing.dumps({"b": binding.as_list(), "a": answers}, salt=_SALT, compress=True)


def unseal(state: str, binding: StateBinding) -> dict[str, Any]:
    """The answers `state` holds; -32602 when it is tampered with or bound to another caller,
    tool or arguments (one answer for all of those: nothing to probe), or, only for the
    caller's own request, when it has expired."""
    try:
        payload = signing.loads(state, salt=_SALT, max_age=settings.MCP_INPUT_STATE_TTL)
    except signing.SignatureExpired:
        payload = signing.loads(state, salt=_SALT)  # authentic, only too old: whose is it?
        if _bound_to(payload, binding):
            raise invalid_params("requestState has expired: make the request again") from None
        raise _unverified() from None
    except signing.BadSignature:
        raise _unverified() from None
    if not _bound_to(payload, binding) or not isinstance(payload.get("a"), dict):
        raise _unverified()
    answers: dict[str, Any] = payload["a"]
    return answers


def _bound_to(payload: Any, binding: StateBinding) -> bool:
    return isinstance(payload, dict) and payload.get("b") == binding.as_list()


def _unverified() -> JsonRpcError:
    return invalid_params("requestState failed verification")


def input_round(
    params: Mapping[str, Any], *, binding: StateBinding, capabilities: Mapping[str, Any]
) -> InputRound:
    """The round a 2026-07-28 request is: its verified state's answers and its responses
    (JsonRpcError -32602 for malformed input or a state that fails verification)."""
    responses = input_responses(params)
    state = request_state(params)
    answers = unseal(state, binding) if state is not None else {}
    return InputRound(
        capabilities=capabilities,
        seal=lambda gathered: seal(binding, gathered),
        answers=answers,
        responses=responses,
    )


def resumed_round(carried: Mapping[str, Any], binding: StateBinding) -> InputRound:
    """The round `InputRound.carried` gave, verified where the request arrived, resumed where
    the call runs (ValueError when it is not such data)."""
    capabilities, answers = carried.get("capabilities"), carried.get("answers")
    responses = carried.get("responses")
    if not (
        isinstance(capabilities, dict) and isinstance(answers, dict) and isinstance(responses, dict)
    ):
        raise ValueError("an input round carries capabilities, answers and responses")
    return InputRound(
        capabilities=capabilities,
        seal=lambda gathered: seal(binding, gathered),
        answers=answers,
        responses=responses,
    )
