"""What the generated settings classes of every process share (``ffrtmp.settings``).

They are frozen, so no code path can change a process's settings after start; ``replace``
makes the changed copy tests need; and their repr masks the secrets, so a logged or printed
settings object never leaks a token.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, Self, TypeVar, dataclass_transform

FROZEN_MESSAGE = "Settings are frozen; build new ones with replace()"

_Class = TypeVar("_Class", bound=type)


def _refuse_assignment(self: object, name: str, value: object) -> None:
    raise dataclasses.FrozenInstanceError(FROZEN_MESSAGE)


@dataclass_transform(frozen_default=True)
def settings_class(cls: _Class) -> _Class:
    """A frozen dataclass without a generated repr, whose refusal says how to change it."""
    dataclasses.dataclass(frozen=True, repr=False)(cls)  # changes cls in place (no slots)
    refuse: Callable[[object, str, object], None] = _refuse_assignment
    setattr(cls, "__setattr__", refuse)  # noqa: B010 - replaces the dataclass's own after it is built
    return cls


def is_secret(name: str) -> bool:
    return name.endswith(("token", "tokens"))


class SettingsBase:
    """Base of one process's settings: typed fields come from the generated subclass."""

    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        shown = {f.name: ("***" if is_secret(f.name) else getattr(self, f.name))
                 for f in dataclasses.fields(self)}
        return f"Settings({shown})"
