"""The allowance kept per principal for HTTP requests (`ConnectionAdmission.allowance_for`):
one per caller while its buckets are the shared ones, a new one once a sweep forgot them;
the rates hold across requests either way."""

import dataclasses

from accounts.limits import default_limits
from accounts.principal import Principal
from mcp_server.admission import KEPT_ALLOWANCES, ConnectionAdmission


def _principal(user_id: int, *, rate: float = 1.0, burst: int = 2) -> Principal:
    limits = dataclasses.replace(
        default_limits(),
        message_rate_per_user=rate,
        message_burst_per_user=burst,
        message_rate_per_tenant=0.0,
    )
    return Principal(
        user_id=user_id,
        username=f"user{user_id}",
        tenant_id=1,
        tenant_slug="acme",
        is_tenant_admin=False,
        enabled_tools=None,
        limits=limits,
    )


def test_the_same_principal_gets_the_same_allowance_and_its_rate_holds_across_requests() -> None:
    admission = ConnectionAdmission()
    caller = _principal(1)
    first = admission.allowance_for(caller)
    assert admission.allowance_for(caller) is first
    assert first.take() is None and admission.allowance_for(caller).take() is None
    refusal = admission.allowance_for(caller).take()
    assert refusal is not None and refusal.limit == "messages per user"


def test_another_principal_of_the_same_user_draws_from_the_same_bucket() -> None:
    admission = ConnectionAdmission()
    one, other = _principal(1), _principal(1)
    assert admission.allowance_for(one) is not admission.allowance_for(other)
    assert admission.allowance_for(one).take() is None
    assert admission.allowance_for(other).take() is None
    assert admission.allowance_for(one).take() is not None


def test_an_allowance_whose_bucket_a_sweep_forgot_is_replaced() -> None:
    admission = ConnectionAdmission()
    for buckets in (admission._user_buckets, admission._tenant_buckets):
        buckets.sweep_interval = 0.0  # every allowance made sweeps
    caller = _principal(1)
    kept = admission.allowance_for(caller)
    # Another caller's allowance sweeps: the first caller's bucket is full and unused.
    admission.allowance_for(_principal(2))
    assert admission._user_buckets.peek(1) is None
    renewed = admission.allowance_for(caller)
    assert renewed is not kept
    assert renewed._buckets == (admission._user_buckets.peek(1),)


def test_at_most_the_bound_of_allowances_is_kept_the_oldest_going_first() -> None:
    admission = ConnectionAdmission()
    callers = [_principal(user_id) for user_id in range(KEPT_ALLOWANCES + 1)]
    first = admission.allowance_for(callers[0])
    for caller in callers[1:]:
        admission.allowance_for(caller)
    assert len(admission._kept) == KEPT_ALLOWANCES
    assert admission.allowance_for(callers[0]) is not first  # forgotten, made again
    assert len(admission._kept) == KEPT_ALLOWANCES
