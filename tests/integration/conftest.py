"""The CLI modules' fixtures, shared: one real master per module and the CLI bound to it."""

from tests.integration.test_cli import master, ops

__all__ = ["master", "ops"]
