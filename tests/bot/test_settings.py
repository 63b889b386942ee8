"""Settings: environment and .env, one-line errors naming the variable, secrets never shown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.engine import policy_from
from bot.settings import SettingsError, load_settings


def test_platform_defaults_to_local_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().resolved_platform == "local"
    monkeypatch.setenv("FIREWORKS_API_KEY", "fw-secret-123")
    assert load_settings().resolved_platform == "fireworks"
    monkeypatch.setenv("SFTBOT_PLATFORM", "local")
    assert load_settings().resolved_platform == "local"


def test_dotenv_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SFTBOT_APPROVERS=U1, S2\nSFTBOT_BUDGET_USD=25\n", encoding="utf-8")
    s = load_settings()
    assert s.approvers == ["U1", "S2"] and s.budget_usd == 25.0


def test_missing_required_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREWORKS_API_KEY", "fw-secret-123")
    with pytest.raises(SettingsError, match="FIREWORKS_ACCOUNT_ID"):
        load_settings().require_for_platform()


def test_invalid_value_names_the_variable_and_not_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SFTBOT_POLL_SECONDS", "soon")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "SFTBOT_POLL_SECONDS" in str(info.value) and "soon" not in str(info.value)


def test_secrets_never_appear_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREWORKS_API_KEY", "fw-secret-123")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-secret-456")
    s = load_settings()
    assert "fw-secret-123" not in repr(s) and "xoxb-secret-456" not in str(s.model_dump())


def test_cli_start_up_failure_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"PATH": "/usr/bin:/bin", "FIREWORKS_API_KEY": "fw-secret-123", "SFTBOT_DATA_DIR": "/tmp/sftbot-test-settings"}
    out = subprocess.run(
        [sys.executable, "-m", "bot.cli", "run", "--yes", "dataset=sftbot:demo model=qwen3-8b"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 1
    assert out.stderr.strip() == "sftbot: missing setting FIREWORKS_ACCOUNT_ID: set it in the environment or in .env"
    assert "fw-secret-123" not in out.stdout + out.stderr


def test_the_security_settings_reach_the_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "SFTBOT_EVALUATOR_MEMORY_MB": "3000",
        "SFTBOT_MAX_SANDBOXES": "3",
        "SFTBOT_UPLOAD_QUOTA_MB": "10",
        "SFTBOT_UPLOADS_TOTAL_MB": "20",
        "SFTBOT_UPLOAD_RETENTION_HOURS": "2",
        "SFTBOT_FOREIGN_ACCOUNTS": "partner, vendor",
        "FIREWORKS_ACCOUNT_ID": "acme",
        "FIREWORKS_API_KEY": "fw-test-key",  # an account id alone is refused (test_cli_preflight)
        "SFTBOT_UNSAFE_EVALUATORS": "true",
    }.items():
        monkeypatch.setenv(key, value)
    s = load_settings()
    limits = s.sandbox_limits()
    assert (limits.memory_mb, limits.max_sandboxes, limits.unsafe) == (1000, 3, True)  # 3000 MB split over 3 sandboxes
    files = s.local_files(slack=True)
    assert (files.upload_quota_bytes, files.uploads_total_bytes) == (10 * 2**20, 20 * 2**20)
    assert files.upload_retention_seconds == 7200 and files.foreign_accounts == ["partner", "vendor"] and files.account == "acme"
    assert policy_from(s).admin_evaluators  # unsafe evaluators: only admins supply evaluator files
