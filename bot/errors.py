"""The command line's two kinds of refusal, shared by every command module (exit 2 and exit 1)."""

from __future__ import annotations


class UsageError(Exception):
    """Wrong use of the command line (exit 2)."""


class Refused(Exception):
    """The request was understood but cannot be carried out (exit 1); ``str()`` names the problem and the fix."""
