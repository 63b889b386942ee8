"""The fake's account resource: ``GET /v1/accounts/{id}``, the one cheap read a preflight makes.

As the SDK models it (resources/accounts.py:109-150, types/account.py:38-48): ``state`` (READY)
and ``suspendState`` (UNSUSPENDED unless a test sets ``fake.suspend_state``, e.g.
CREDIT_DEPLETED). A key for another account gets 404 here, the SDK's hint for "Verify the ID/name
is correct and belongs to the resolved account" (training/sdk/errors.py:141-142); a refused key
gets the fake's 401 before any route.
"""

from __future__ import annotations

from aiohttp import web

from .wire import Ctx, rpc_error


class AccountRoutes:
    account: str
    suspend_state: str

    async def _account_get(self, ctx: Ctx) -> web.Response:
        (account,) = ctx.groups
        if account != self.account:
            return rpc_error("NOT_FOUND", f"account {account} not found")
        return web.json_response(
            {"name": f"accounts/{account}", "displayName": account, "state": "READY", "suspendState": self.suspend_state}
        )
