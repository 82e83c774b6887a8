"""The typed, frozen settings of each process, as ``ffrtmp.config.load`` returns them.

Generated from ``ffrtmp.config.SETTINGS`` and ``SECRETS`` by ``python -m ffrtmp.settings.codegen``;
do not edit (a unit test fails while this file is stale). ``<Process>Config`` holds the table's
values; ``<Process>Settings`` adds the secrets read from the token files.
"""

from __future__ import annotations

from ffrtmp.settings.base import SettingsBase, settings_class


@settings_class
class MasterConfig(SettingsBase):
    """The master process's values from the table."""

    master_bind: tuple[str, int]
    metrics_bind: tuple[str, int]
    database: str
    database_password_file: str | None
    api_token_file: str
    enroll_token_file: str
    media_roots: tuple[str, ...]
    log_dir: str
    log_level: str
    workers: int
    threads: int
    graceful_timeout: float
    read_timeout: float
    heartbeat_interval: float
    node_timeout: float
    lease: float
    claim_wait_max: float
    retention_days: int
    duty_interval: float
    max_body: int
    tls_cert_file: str | None
    tls_key_file: str | None


@settings_class
class MasterSettings(MasterConfig):
    """The master process's values with its secrets."""

    api_tokens: tuple[str, ...]
    enroll_token: str


@settings_class
class AgentConfig(SettingsBase):
    """The agent process's values from the table."""

    enroll_token_file: str
    media_roots: tuple[str, ...]
    log_dir: str
    log_level: str
    master_url: tuple[str, ...]
    ca_file: str | None
    media_store_url: str | None
    media_credentials_file: str | None
    agent_bind: tuple[str, int]
    agent_web_config: str | None
    state_dir: str
    work_dir: str
    disk_limit_percent: float
    slots: int
    shutdown_timeout: float
    node_name: str
    cancel_grace: float
    job_history: int
    job_history_hours: int


@settings_class
class AgentSettings(AgentConfig):
    """The agent process's values with its secrets."""

    enroll_token: str


@settings_class
class CliConfig(SettingsBase):
    """The cli process's values from the table."""

    api_token_file: str
    master_url: tuple[str, ...]
    ca_file: str | None
    media_store_url: str | None
    media_credentials_file: str | None


@settings_class
class CliSettings(CliConfig):
    """The cli process's values with its secrets."""

    api_token: str


CONFIG_CLASSES: dict[str, type[SettingsBase]] = {
    "master": MasterConfig,
    "agent": AgentConfig,
    "cli": CliConfig,
}

SETTINGS_CLASSES: dict[str, type[SettingsBase]] = {
    "master": MasterSettings,
    "agent": AgentSettings,
    "cli": CliSettings,
}
