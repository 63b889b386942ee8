"""The bot token scopes manifest.yml asks for, as `sftbot doctor` compares them with a token's.

Kept here rather than read from manifest.yml at run time: an installed sftbot has no manifest
beside it. tests/bot/test_doctor.py checks the two lists are the same.
"""

from __future__ import annotations

MANIFEST_BOT_SCOPES = (
    "commands",
    "chat:write",
    "chat:write.public",
    "files:write",
    "app_mentions:read",
    "im:history",
    "im:read",
    "im:write",
    "users:read",
    "usergroups:read",
    "channels:read",
    "groups:read",
    "channels:history",
    "groups:history",
    "files:read",
)
