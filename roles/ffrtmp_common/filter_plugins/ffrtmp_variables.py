"""The ffrtmp_* variables the roles know, and the nearest known name for one they do not.

Ansible ignores a variable no task reads: a typo (``ffrtmp_worker_slot: 3``) would leave the
default in place without a word. Every role's preflight includes
``ffrtmp_common/tasks/variables.yml``, which passes the host's ``ffrtmp_*`` names through
``ffrtmp_unknown_variables``. The known names are read from each role's
``meta/argument_specs.yml`` (the roles' documented interface, which a test keeps equal to
their defaults), so a new option needs no second list.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

import yaml
from ansible.errors import AnsibleFilterError

ROLES = Path(__file__).resolve().parents[2]


def known_variables(roles: Path = ROLES) -> set[str]:
    """Every option of every entry point of every ffrtmp_* role beside this one."""
    known: set[str] = set()
    for spec in sorted(roles.glob("ffrtmp_*/meta/argument_specs.yml")):
        try:
            entry_points = yaml.safe_load(spec.read_text(encoding="utf-8"))["argument_specs"]
        except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
            raise AnsibleFilterError(f"cannot read the known variables from {spec}: {exc}") from exc
        for entry in entry_points.values():
            known.update((entry or {}).get("options") or {})
    if not known:
        raise AnsibleFilterError(f"no ffrtmp_*/meta/argument_specs.yml under {roles}")
    return known


def unknown_variables(names: Iterable[str], extra: Iterable[str] = ()) -> list[str]:
    """One line per unknown ffrtmp_* name: the name, and the nearest known one if any is close."""
    known = known_variables() | set(extra)
    lines = []
    for name in sorted({str(n) for n in names if str(n).startswith("ffrtmp_")} - known):
        near = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
        lines.append(f"{name} (did you mean {near[0]}?)" if near else f"{name} (no known variable is close)")
    return lines


class FilterModule:
    """``ffrtmp_unknown_variables``: see ``unknown_variables``."""

    def filters(self) -> dict[str, object]:
        return {"ffrtmp_unknown_variables": unknown_variables}
