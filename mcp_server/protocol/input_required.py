"""Input-required results (2026-07-28 "multi round-trip requests", MRTR); pure.

A request that needs input from the client is answered with an InputRequiredResult
(`resultType: "input_required"`, keyed `inputRequests`, an opaque `requestState`); the client
retries with a new id, the `inputResponses` by the same keys and the echoed `requestState`.
An `InputRound` is what one such request brings: the answers earlier rounds gathered (from
the request state, already verified by the caller) and this retry's responses. Asking it for
input answers from those, or raises `InputRequired` naming what is still missing, which the
runner turns into the result.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mcp_server.protocol import methods
from mcp_server.protocol.errors import INVALID_PARAMS, JsonRpcError, invalid_params

INPUT_REQUIRED = "input_required"
INPUT_RESPONSES = "inputResponses"
REQUEST_STATE = "requestState"
# What each input request needs the client to have declared: (capability, mode).
NEEDS: dict[str, tuple[str, str | None]] = {
    methods.ELICITATION_CREATE: ("elicitation", "form"),
    methods.SAMPLING_CREATE_MESSAGE: ("sampling", None),
    methods.ROOTS_LIST: ("roots", None),
}
_ELICIT_ACTIONS = frozenset({"accept", "decline", "cancel"})

Seal = Callable[[dict[str, Any]], str]


def declares(capabilities: Mapping[str, Any], capability: str, mode: str | None = None) -> bool:
    """Whether client `capabilities` declare `capability` (and, when given, its sub-mode
    `mode`; an empty declaration means the capability's default mode only)."""
    declared = capabilities.get(capability)
    if not isinstance(declared, dict):
        return False
    if mode is None:
        return True
    return mode in declared if declared else mode == "form"


@dataclass(frozen=True, slots=True)
class InputRequest:
    """One request the server needs the client to fulfil (elicitation, sampling, roots)."""

    method: str
    params: dict[str, Any]

    def as_wire(self) -> dict[str, Any]:
        """The request object of `inputRequests`."""
        return {"method": self.method, "params": self.params}


def elicitation_request(message: str, requested_schema: dict[str, Any]) -> InputRequest:
    """An `elicitation/create` request in form mode."""
    params = {"message": message, "requestedSchema": requested_schema}
    return InputRequest(methods.ELICITATION_CREATE, params)


def sampling_request(
    messages: list[dict[str, Any]],
    *,
    max_tokens: int,
    system_prompt: str | None = None,
    options: dict[str, Any] | None = None,
) -> InputRequest:
    """A `sampling/createMessage` request; `options` are further params as the wire names them."""
    params: dict[str, Any] = {**(options or {}), "messages": messages, "maxTokens": max_tokens}
    if system_prompt is not None:
        params["systemPrompt"] = system_prompt
    return InputRequest(methods.SAMPLING_CREATE_MESSAGE, params)


def roots_request() -> InputRequest:
    """A `roots/list` request."""
    return InputRequest(methods.ROOTS_LIST, {})


class InputRequired(BaseException):
    """Raised where input is missing: the request ends as an InputRequiredResult asking for
    `requests` (never seen by the client as an error).

    A BaseException, as CancelledError is: a tool's own `except Exception` around its work
    must not swallow the signal and carry on without the answer.
    """

    def __init__(self, requests: dict[str, InputRequest]) -> None:
        super().__init__(", ".join(requests))
        self.requests = requests


class InvalidInputResponse(JsonRpcError):
    """A response in `inputResponses` is not what its request asks for (-32602)."""

    def __init__(self, message: str) -> None:
        super().__init__(INVALID_PARAMS, message)


def input_responses(params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The retry's `inputResponses` ({} when absent); -32602 unless an object of objects."""
    if INPUT_RESPONSES not in params:
        return {}
    responses = params[INPUT_RESPONSES]
    if not isinstance(responses, dict):
        raise invalid_params("inputResponses must be an object keyed as the inputRequests were")
    for key, value in responses.items():
        if not isinstance(value, dict):
            raise invalid_params(f"inputResponses[{key!r}] must be an object (the client's result)")
    return responses


def request_state(params: Mapping[str, Any]) -> str | None:
    """The echoed `requestState` (None when absent); -32602 unless a non-empty string."""
    state = params.get(REQUEST_STATE)
    if state is None:
        return None
    if not isinstance(state, str) or not state:
        raise invalid_params("requestState must be the string the server sent")
    return state


def check_response(key: str, method: str, response: dict[str, Any]) -> None:
    """InvalidInputResponse unless `response` is a result of `method` (the fields the server
    reads from it)."""
    if method == methods.ELICITATION_CREATE:
        action = response.get("action")
        if action not in _ELICIT_ACTIONS:
            raise InvalidInputResponse(
                f"inputResponses[{key!r}] must be an ElicitResult: action is accept, decline "
                "or cancel"
            )
        if "content" in response and not isinstance(response["content"], dict):
            raise InvalidInputResponse(f"inputResponses[{key!r}].content must be an object")
    elif method == methods.SAMPLING_CREATE_MESSAGE:
        if not isinstance(response.get("role"), str) or not isinstance(
            response.get("content"), dict | list
        ):
            raise InvalidInputResponse(
                f"inputResponses[{key!r}] must be a CreateMessageResult (role and content)"
            )
    elif method == methods.ROOTS_LIST and not isinstance(response.get("roots"), list):
        raise InvalidInputResponse(f"inputResponses[{key!r}] must be a ListRootsResult (roots)")


class InputRound:
    """The input one request of a multi round-trip exchange has: the answers of earlier rounds
    (`answers`, from its verified request state) and this retry's `responses`."""

    __slots__ = ("_responses", "_seal", "answers", "capabilities")

    def __init__(
        self,
        *,
        capabilities: Mapping[str, Any],
        seal: Seal,
        answers: dict[str, Any] | None = None,
        responses: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.capabilities = capabilities
        self.answers: dict[str, Any] = dict(answers or {})
        self._responses = responses or {}
        self._seal = seal

    def carried(self) -> dict[str, Any]:
        """The round as plain data, for the process that runs the call (a worker), which
        resumes it with `input_state.resumed_round`."""
        return {
            "capabilities": dict(self.capabilities),
            "answers": self.answers,
            "responses": self._responses,
        }

    def supports(self, capability: str, mode: str | None = None) -> bool:
        """Whether this request's client declared `capability` (and `mode`)."""
        return declares(self.capabilities, capability, mode)

    def known(self, requests: Mapping[str, InputRequest]) -> dict[str, dict[str, Any]]:
        """The answers to those of `requests` answered so far, by key (this retry's responses
        checked and kept for the next round); unasked keys of the retry are ignored."""
        found: dict[str, dict[str, Any]] = {}
        for key, request in requests.items():
            if key not in self.answers:
                response = self._responses.get(key)
                if response is None:
                    continue
                check_response(key, request.method, response)
                self.answers[key] = response
            found[key] = self.answers[key]
        return found

    def answers_all(self, requests: Mapping[str, InputRequest]) -> bool:
        """Whether every one of `requests` is answered."""
        return len(self.known(requests)) == len(requests)

    def take(self, requests: Mapping[str, InputRequest]) -> dict[str, dict[str, Any]]:
        """The answers to `requests` by key; InputRequired naming those not answered yet (the
        answered ones are kept for the next round)."""
        found = self.known(requests)
        missing = {key: request for key, request in requests.items() if key not in found}
        if missing:
            raise InputRequired(missing)
        return found

    def result(self, asked: InputRequired) -> dict[str, Any]:
        """The InputRequiredResult for what `asked` is missing, carrying the answers so far."""
        return input_required_result(asked.requests, self._seal(self.answers))


def input_required_result(requests: Mapping[str, InputRequest], state: str) -> dict[str, Any]:
    """An InputRequiredResult asking for `requests`, with the sealed `state` to echo."""
    return {
        "resultType": INPUT_REQUIRED,
        "inputRequests": {key: request.as_wire() for key, request in requests.items()},
        REQUEST_STATE: state,
    }
