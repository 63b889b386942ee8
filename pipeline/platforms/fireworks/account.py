"""Is this key good for this account, and may the account spend? One cheap authenticated call.

``accounts.get`` (GET /v1/accounts/{id}, SDK resources/accounts.py:109-150) names the account,
so it tells a refused key (401, SDK _client.py:724-725) from a key that is fine but not this
account's (403 or 404: the SDK's own hints, training/sdk/errors.py:141-142, "Your key is valid,
but it may not have permission for this account" / "Verify the ID/name is correct and belongs to
the resolved account"). The answer's ``suspendState`` (types/account.py:38-48) says whether the
account can spend at all.
"""

from __future__ import annotations

from fireworks import AsyncFireworks, AuthenticationError, NotFoundError, PermissionDeniedError

from pipeline.domain.platform import PlatformError
from pipeline.platforms.fireworks.calls import Caller, message_of

# suspendState values that mean the account cannot start anything (types/account.py:44-48).
SUSPENDED = {
    "FAILED_PAYMENTS": "its payments failed",
    "CREDIT_DEPLETED": "its credit is used up",
    "MONTHLY_SPEND_LIMIT_EXCEEDED": "it reached its monthly spend limit",
    "BLOCKED_BY_ABUSE_RULE": "it is blocked by an abuse rule",
}


async def check_account(control: AsyncFireworks, calls: Caller, account: str) -> dict[str, str | None]:
    """The account's state and suspend state; PlatformError with the fix when the key or account is wrong."""
    try:
        found = await calls.run("read the account", lambda: control.accounts.get(account_id=account))
    except PlatformError as exc:
        cause = exc.__cause__ or exc.__context__
        raise PlatformError(calls.redact(_why(cause, account) or str(exc))) from None
    suspended = SUSPENDED.get(found.suspend_state or "")
    if suspended is not None:
        raise PlatformError(
            f"Fireworks account {account} cannot spend: {suspended} ({found.suspend_state}); settle it in the "
            "Fireworks dashboard (Billing), then start again"
        )
    return {"state": found.state, "suspend_state": found.suspend_state}


def _why(cause: BaseException | None, account: str) -> str | None:
    if isinstance(cause, AuthenticationError):
        return (
            "Fireworks refused FIREWORKS_API_KEY (HTTP 401): copy a current key from the Fireworks dashboard "
            "(Settings > API Keys)"
        )
    if isinstance(cause, (NotFoundError, PermissionDeniedError)):
        status = 404 if isinstance(cause, NotFoundError) else 403
        return (
            f"FIREWORKS_ACCOUNT_ID {account} is not this API key's account (HTTP {status}: {message_of(cause)}): "
            "set it to the account id shown in the Fireworks dashboard (Settings > Account)"
        )
    return None
