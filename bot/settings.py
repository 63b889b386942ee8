"""Settings from the environment and an optional `.env` file (pydantic-settings).

Secrets are ``SecretStr`` so they never print in a repr, a log line or an error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from platformdirs import user_data_dir
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pipeline.dataset.access import LocalFiles
from pipeline.evaluation.eval_types import SandboxLimits


class SettingsError(RuntimeError):
    """A required setting is missing or invalid; the message names the variable, never a value."""


def _csv(value: object) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


class Settings(BaseSettings):
    """Every knob of the bot. Names are the environment variables users set."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    data_dir: Path = Field(
        default_factory=lambda: Path(user_data_dir("sftbot")), validation_alias=AliasChoices("SFTBOT_DATA_DIR")
    )
    platform: Literal["fireworks", "local"] | None = Field(default=None, validation_alias=AliasChoices("SFTBOT_PLATFORM"))
    poll_seconds: float = Field(default=30.0, gt=0, validation_alias=AliasChoices("SFTBOT_POLL_SECONDS"))
    stall_minutes: float = Field(default=10.0, gt=0, validation_alias=AliasChoices("SFTBOT_STALL_MINUTES"))

    fireworks_api_key: SecretStr | None = Field(default=None, validation_alias=AliasChoices("FIREWORKS_API_KEY"))
    fireworks_account_id: str | None = Field(default=None, validation_alias=AliasChoices("FIREWORKS_ACCOUNT_ID"))
    fireworks_base_url: str | None = Field(default=None, validation_alias=AliasChoices("FIREWORKS_BASE_URL"))
    fireworks_inference_url: str | None = Field(default=None, validation_alias=AliasChoices("FIREWORKS_INFERENCE_URL"))

    slack_bot_token: SecretStr | None = Field(default=None, validation_alias=AliasChoices("SLACK_BOT_TOKEN"))
    slack_app_token: SecretStr | None = Field(default=None, validation_alias=AliasChoices("SLACK_APP_TOKEN"))
    slack_signing_secret: SecretStr | None = Field(default=None, validation_alias=AliasChoices("SLACK_SIGNING_SECRET"))
    slack_api_url: str | None = Field(default=None, validation_alias=AliasChoices("SLACK_API_URL"))
    mode: Literal["socket", "http"] = Field(default="socket", validation_alias=AliasChoices("SFTBOT_MODE"))
    http_port: int = Field(default=3000, validation_alias=AliasChoices("SFTBOT_HTTP_PORT"))

    approvers: Annotated[list[str], NoDecode] = Field(default_factory=list, validation_alias=AliasChoices("SFTBOT_APPROVERS"))
    admins: Annotated[list[str], NoDecode] = Field(default_factory=list, validation_alias=AliasChoices("SFTBOT_ADMINS"))
    allow_self_approval: bool = Field(default=True, validation_alias=AliasChoices("SFTBOT_ALLOW_SELF_APPROVAL"))
    channels: Annotated[list[str], NoDecode] = Field(default_factory=list, validation_alias=AliasChoices("SFTBOT_CHANNELS"))
    budget_usd: float | None = Field(default=None, validation_alias=AliasChoices("SFTBOT_BUDGET_USD"))

    evaluator_dir: Path | None = Field(default=None, validation_alias=AliasChoices("SFTBOT_EVALUATOR_DIR"))
    local_port: int = Field(default=8765, validation_alias=AliasChoices("SFTBOT_LOCAL_PORT"))
    local_api_key: SecretStr | None = Field(default=None, validation_alias=AliasChoices("SFTBOT_LOCAL_API_KEY"))
    # The local endpoint answers Host names 127.0.0.1, localhost and [::1], plus these (DNS rebinding).
    local_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=AliasChoices("SFTBOT_LOCAL_ALLOWED_HOSTS")
    )
    # The most tokens one local request may ask for, and how long a request waits for a place
    # while the endpoint is full before it gets 503 + Retry-After.
    local_max_tokens: int = Field(default=4096, ge=1, validation_alias=AliasChoices("SFTBOT_LOCAL_MAX_TOKENS"))
    local_queue_seconds: float = Field(default=10.0, gt=0, le=600, validation_alias=AliasChoices("SFTBOT_LOCAL_QUEUE_SECONDS"))

    # What the Slack bot may read from its own machine (pipeline/dataset/access.py); the terminal reads any path.
    dataset_dir: Path | None = Field(default=None, validation_alias=AliasChoices("SFTBOT_DATASET_DIR"))
    model_dir: Path | None = Field(default=None, validation_alias=AliasChoices("SFTBOT_MODEL_DIR"))
    max_dataset_mb: int = Field(default=2048, gt=0, validation_alias=AliasChoices("SFTBOT_MAX_DATASET_MB"))
    # Datasets attached in Slack: kept per person and in all up to these sizes, and deleted once no
    # unfinished run has named them for this long.
    upload_quota_mb: int = Field(default=4096, gt=0, validation_alias=AliasChoices("SFTBOT_UPLOAD_QUOTA_MB"))
    uploads_total_mb: int = Field(default=16384, gt=0, validation_alias=AliasChoices("SFTBOT_UPLOADS_TOTAL_MB"))
    upload_retention_hours: float = Field(default=24.0, gt=0, validation_alias=AliasChoices("SFTBOT_UPLOAD_RETENTION_HOURS"))
    # Other Fireworks accounts whose datasets and hosted evaluators runs may name (comma-separated).
    foreign_accounts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=AliasChoices("SFTBOT_FOREIGN_ACCOUNTS")
    )
    # Also DM each approver a link when a plan or a promotion waits for them (the thread mentions them anyway).
    dm_approvers: bool = Field(default=False, validation_alias=AliasChoices("SFTBOT_DM_APPROVERS"))
    # Who is in a channel (what a person may see follows it) is asked of Slack at most this often per channel.
    membership_ttl_seconds: float = Field(
        default=120.0, gt=0, le=3600, validation_alias=AliasChoices("SFTBOT_MEMBERSHIP_TTL_SECONDS")
    )
    # Run users' evaluators even where the sandbox cannot isolate them (weaker containment).
    unsafe_evaluators: bool = Field(default=False, validation_alias=AliasChoices("SFTBOT_UNSAFE_EVALUATORS"))
    # Users' evaluators all together never hold more memory than this; at most this many run at
    # once, each with an equal share (more wait their turn).
    evaluator_memory_mb: int = Field(default=2048, gt=0, validation_alias=AliasChoices("SFTBOT_EVALUATOR_MEMORY_MB"))
    max_sandboxes: int = Field(default=2, ge=1, le=64, validation_alias=AliasChoices("SFTBOT_MAX_SANDBOXES"))

    # Serving and evaluation on Fireworks. Scaling 0 -> 1 takes "up to a few minutes", longer
    # for large models (DOC deployments/autoscaling): chats wait this long for a replica.
    warmup_minutes: float = Field(default=20.0, gt=0, validation_alias=AliasChoices("SFTBOT_WARMUP_MINUTES"))
    warmup_minutes_large: float = Field(default=45.0, gt=0, validation_alias=AliasChoices("SFTBOT_WARMUP_MINUTES_LARGE"))
    # Tokens per held-out answer; reasoning bases get reasoning_effort="none" unless the data trains reasoning.
    answer_max_tokens: int = Field(default=512, ge=16, le=32768, validation_alias=AliasChoices("SFTBOT_ANSWER_MAX_TOKENS"))
    # A sweep none of whose jobs the platform will start (quota, capacity) fails after this long.
    quota_give_up_minutes: float = Field(default=60.0, gt=0, validation_alias=AliasChoices("SFTBOT_QUOTA_GIVE_UP_MINUTES"))
    # The money guard: a run's cap is what was approved x this margin; a paid step that would
    # pass it waits at a budget gate. Deployments up this long get one "keep it?" DM.
    spend_margin: float = Field(default=1.2, ge=1.0, le=10.0, validation_alias=AliasChoices("SFTBOT_SPEND_MARGIN"))
    idle_deployment_hours: float = Field(default=24.0, gt=0, validation_alias=AliasChoices("SFTBOT_IDLE_DEPLOYMENT_HOURS"))
    # Weights & Biases logging of the Fireworks SFT jobs (all jobs of a run log to this project).
    wandb_api_key: SecretStr | None = Field(default=None, validation_alias=AliasChoices("SFTBOT_WANDB_API_KEY"))
    wandb_project: str | None = Field(default=None, validation_alias=AliasChoices("SFTBOT_WANDB_PROJECT"))
    wandb_entity: str | None = Field(default=None, validation_alias=AliasChoices("SFTBOT_WANDB_ENTITY"))

    @field_validator("approvers", "admins", "channels", "local_allowed_hosts", "foreign_accounts", mode="before")
    @classmethod
    def _split(cls, v: object) -> list[str]:
        return _csv(v)

    @property
    def resolved_platform(self) -> Literal["fireworks", "local"]:
        """`fireworks` when an API key is configured, else `local`, unless set explicitly."""
        if self.platform is not None:
            return self.platform
        return "fireworks" if self.fireworks_api_key else "local"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "sftbot.sqlite3"

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    @property
    def uploads_dir(self) -> Path:
        """Files people attach in Slack (datasets, evaluators) are saved here."""
        return self.data_dir / "uploads"

    def local_files(self, *, slack: bool) -> LocalFiles:
        """What runs may read from this machine: any path from the terminal, only its folders from Slack."""
        mb = 1024 * 1024
        return LocalFiles(
            mode="folders" if slack else "any",
            uploads_dir=self.uploads_dir,
            dataset_dir=self.dataset_dir,
            model_dir=self.model_dir,
            max_dataset_bytes=self.max_dataset_mb * mb,
            upload_quota_bytes=self.upload_quota_mb * mb,
            uploads_total_bytes=self.uploads_total_mb * mb,
            upload_retention_seconds=self.upload_retention_hours * 3600,
            account=self.fireworks_account_id,
            foreign_accounts=self.foreign_accounts,
        )

    def sandbox_limits(self) -> SandboxLimits:
        """What each user evaluator runs under (pipeline/evaluation): the memory budget split over the sandboxes."""
        return SandboxLimits(
            unsafe=self.unsafe_evaluators,
            memory_mb=self.evaluator_memory_mb // self.max_sandboxes,
            max_sandboxes=self.max_sandboxes,
        )

    def require(self, *names: str) -> None:
        """Fail with one line naming the first missing variable (never its value)."""
        env_names = {
            "fireworks_api_key": "FIREWORKS_API_KEY",
            "fireworks_account_id": "FIREWORKS_ACCOUNT_ID",
            "slack_bot_token": "SLACK_BOT_TOKEN",
            "slack_app_token": "SLACK_APP_TOKEN",
            "slack_signing_secret": "SLACK_SIGNING_SECRET",
        }
        for name in names:
            if not getattr(self, name):
                raise SettingsError(f"missing setting {env_names.get(name, name.upper())}: set it in the environment or in .env")

    def check_wandb(self) -> None:
        """Both or neither: a key without a project (or the reverse) is a half-made setting."""
        if bool(self.wandb_api_key) != bool(self.wandb_project):
            missing = "SFTBOT_WANDB_PROJECT" if self.wandb_api_key else "SFTBOT_WANDB_API_KEY"
            raise SettingsError(f"missing setting {missing}: W&B logging needs SFTBOT_WANDB_API_KEY and SFTBOT_WANDB_PROJECT")

    def require_for_platform(self) -> None:
        if self.resolved_platform == "fireworks":
            self.require("fireworks_api_key", "fireworks_account_id")

    def require_for_slack(self) -> None:
        self.require("slack_bot_token")
        if self.mode == "socket":
            self.require("slack_app_token")
        else:
            self.require("slack_signing_secret")


def prepare_data_dir(path: Path) -> None:
    """The data dir, private to this user (0700), or one line saying why it cannot be used.

    It holds the database, every run's staged data and the users' evaluators: nobody else on
    the machine should read it. New files are private anyway (the CLI sets umask 077).
    """
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.stat().st_uid == os.geteuid():
            path.chmod(0o700)
        probe = path / f".write-check-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        why = "it is a file, not a folder" if path.exists() and not path.is_dir() else (exc.strerror or str(exc))
        raise SettingsError(f"SFTBOT_DATA_DIR {path} cannot be used ({why}): point it at a folder this user can write") from None


def load_settings(**overrides: object) -> Settings:
    """Read settings; an invalid value fails with one line naming the variable."""
    from pydantic import ValidationError

    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = str(err["loc"][0]) if err.get("loc") else "setting"
        # Never echo the input: it may be a secret.
        raise SettingsError(f"invalid setting {loc.upper()}: {err['msg']}") from None
    half_fireworks(settings)
    # Every command that loads the settings reads or writes the data dir: an unusable one is
    # one line here, not a traceback from whichever file it first touches.
    prepare_data_dir(settings.data_dir)
    return settings


def half_fireworks(settings: Settings) -> None:
    """An account id without a key is a half-made Fireworks set-up, not a wish to train locally."""
    if settings.fireworks_account_id and not settings.fireworks_api_key and settings.platform != "local":
        raise SettingsError(
            "FIREWORKS_ACCOUNT_ID is set but FIREWORKS_API_KEY is not: set the key to use Fireworks, or unset "
            "FIREWORKS_ACCOUNT_ID (or set SFTBOT_PLATFORM=local) to train on this machine"
        )
