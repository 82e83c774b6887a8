"""The defaults the agent's settings and its wrappers share, declared here once.

``ffrtmp.config`` builds its settings table from these, and a hand-started wrapper falls
back to them (behind ``FFRTMP_<NAME>``) exactly as the agent would. They live in a module of
their own, importing nothing, because the wrapper reads them before its workload starts and
must not pay for the whole settings table (argparse, every setting's parser) on that path.
"""

ENV_PREFIX = "FFRTMP_"

WORKER_DEFAULTS: dict[str, str] = {
    "state_dir": "/var/lib/ffrtmp/worker",
    "log_dir": "/var/log/ffrtmp",
    "log_level": "info",
    "cancel_grace": "10",
}


def env_name(name: str) -> str:
    """The environment variable of a setting: ``FFRTMP_<NAME>``."""
    return ENV_PREFIX + name.upper()
