"""Logging for the command line: one line per record on stderr, with the time for `sftbot serve`.

A connection failure is one line — the message, then the error's type and text — never a
traceback: Slack or the network being away is not a bug, and the SDK's Socket Mode client
logs each retry with ``logger.exception``. Anything else keeps its traceback.
"""

from __future__ import annotations

import logging
import sys


def network_error(exc: BaseException | None) -> bool:
    """True for errors that mean "could not reach it", whatever the library."""
    if exc is None:
        return False
    if isinstance(exc, (OSError, TimeoutError, ConnectionError)):
        return True
    aiohttp = sys.modules.get("aiohttp")  # loaded whenever an aiohttp error can exist
    return aiohttp is not None and isinstance(exc, aiohttp.ClientError)


class OneLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        exc = record.exc_info[1] if record.exc_info else None
        if not network_error(exc):
            return super().format(record)
        message = record.getMessage()
        said = str(exc)
        if said not in message:
            message = f"{message} ({type(exc).__name__}: {said or 'no answer'})"
        plain = logging.makeLogRecord({**record.__dict__, "msg": message, "args": None, "exc_info": None, "exc_text": None})
        return super().format(plain)


def configure(*, serving: bool, quiet: bool = False) -> None:
    """sftbot's own records at INFO while serving (its start-up lines, what it does), WARNING
    otherwise or with --quiet; the libraries' at WARNING (their errors still show).

    Like ``logging.basicConfig``, it leaves a process whose logging is already set up alone
    (a program or a test runner that calls ``bot.cli.main``)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    if serving:
        handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"))
        handler.addFilter(_unused_token_warning)
    else:
        handler.setFormatter(OneLineFormatter("sftbot: %(levelname)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("sftbot").setLevel(logging.INFO if serving and not quiet else logging.WARNING)


def _unused_token_warning(record: logging.LogRecord) -> bool:
    """Bolt warns that SLACK_BOT_TOKEN "will be unused" whenever the variable is set and a client
    is given (slack_bolt/app/async_app.py), which is always so here: the client is made from
    that very token. A warning at every start would only make the operator look for a fault."""
    return not (record.name.startswith("slack_bolt") and "`token` will be unused" in record.getMessage())
