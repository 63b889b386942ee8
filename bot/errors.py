"""The command line's refusals and exit codes, shared by every command module.

Exit codes (README, "Command line"): 0 done (a run succeeded); 1 the data or the request
cannot be used, or the run failed; 2 usage error; 3 the run was cancelled; 4 the run waits
for a person (a gate this terminal cannot decide); 124 `sftbot wait --timeout` passed;
130 stopped by Ctrl-C and 143 by SIGTERM (the run is left resumable).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 3
EXIT_NEEDS_PERSON = 4
EXIT_TIMEOUT = 124
EXIT_SIGINT = 130  # 128 + the signal's number, as shells report it
EXIT_SIGTERM = 143


class UsageError(Exception):
    """Wrong use of the command line (exit 2)."""


class Refused(Exception):
    """The request was understood but cannot be carried out (exit 1); ``str()`` names the problem and the fix."""


class NeedsPerson(Exception):
    """A gate needs a person and there is no terminal to ask on (exit 4); the run waits there."""
