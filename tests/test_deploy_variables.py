"""Unknown ffrtmp_* variables fail the play, naming the nearest known one; real ansible-playbook runs.

Each role's preflight includes ``ffrtmp_common/tasks/variables.yml`` (its filter reads every
role's ``meta/argument_specs.yml``). The plays here run against localhost over the local
connection and stop at the check: nothing on the machine is changed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
ROLES = ROOT / "roles"
TOOLS_VENV = Path(os.environ.get("FFRTMP_MOLECULE_VENV", "/opt/ffrtmp-molecule-venv"))
TOP_ROLES = ("ffrtmp_master", "ffrtmp_worker", "ffrtmp_media", "ffrtmp_postgres")


def _playbook_tool() -> str:
    candidate = TOOLS_VENV / "bin" / "ansible-playbook"
    tool = str(candidate) if os.access(candidate, os.X_OK) else shutil.which("ansible-playbook")
    if tool is None:
        pytest.skip("ansible-playbook is not installed (tools/molecule/setup-host.sh installs it)")
    return tool


def _play(tmp_path: Path, host_vars: dict, tasks: list[dict]) -> subprocess.CompletedProcess[str]:
    inventory = {"all": {"hosts": {"localhost": {
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}", **host_vars}}}}
    (tmp_path / "inventory.yml").write_text(json.dumps(inventory), encoding="utf-8")
    play = [{"name": "Check the variables", "hosts": "all", "gather_facts": False, "tasks": tasks}]
    (tmp_path / "play.yml").write_text(json.dumps(play), encoding="utf-8")
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(ROLES), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_RETRY_FILES_ENABLED": "0",
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "ANSIBLE_HOME": str(tmp_path / "home")}
    return subprocess.run([_playbook_tool(), "-i", str(tmp_path / "inventory.yml"),
                           str(tmp_path / "play.yml")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def _include(role: str, tasks_from: str) -> dict:
    return {"name": f"Include {role} {tasks_from}",
            "ansible.builtin.include_role": {"name": role, "tasks_from": tasks_from}}


@pytest.mark.parametrize("role", TOP_ROLES)
def test_a_typo_fails_the_preflight_naming_the_nearest_variable(tmp_path: Path, role: str) -> None:
    result = _play(tmp_path, {"ffrtmp_worker_slot": 3, "ffrtmp_lgo_level": "debug"},
                   [_include(role, "preflight.yml")])
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "Assert that every ffrtmp_* variable is one the roles know" in out, out
    assert "ffrtmp_worker_slot (did you mean ffrtmp_worker_slots?)" in out, out
    assert "ffrtmp_lgo_level (did you mean ffrtmp_log_level?)" in out, out
    # the first check of the preflight: nothing after it ran
    assert "List the listening TCP sockets" not in out, out


def test_a_name_far_from_any_known_one_is_named_too(tmp_path: Path) -> None:
    result = _play(tmp_path, {"ffrtmp_zzz": 1}, [_include("ffrtmp_common", "variables.yml")])
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "ffrtmp_zzz (no known variable is close)" in out, out


def _group_vars() -> dict:
    """Every ffrtmp_* variable the example inventories and the Molecule scenarios set."""
    found: dict = {}
    for path in [*ROOT.glob("inventory/group_vars/*.yml"), *ROOT.glob("inventory/ha/group_vars/*.yml")]:
        found.update(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    for path in ROOT.glob("molecule/*/molecule.yml"):
        groups = yaml.safe_load(path.read_text(encoding="utf-8"))["provisioner"]["inventory"]["group_vars"]
        for values in groups.values():
            found.update(values)
    return {k: v for k, v in found.items() if k.startswith("ffrtmp_")}


def test_the_example_inventories_and_molecule_pass_clean(tmp_path: Path) -> None:
    group_vars = _group_vars()
    assert {"ffrtmp_wheelhouse_archive", "ffrtmp_package_spec", "ffrtmp_worker_slots",
            "ffrtmp_master_database"} <= set(group_vars)
    extra = {"ffrtmp_rolling_drain": True, "ffrtmp_rolling_drain_deadline": "30m"}
    result = _play(tmp_path, {**group_vars, **extra}, [_include("ffrtmp_common", "variables.yml")])
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "ok: [localhost]" in out and "Unknown variable" not in out, out
    assert "[WARNING]" not in out, out


def test_every_ffrtmp_variable_the_playbooks_read_is_known() -> None:
    """A playbook reading a variable no role documents would be a typo waiting to happen."""
    known = set()
    for spec in ROLES.glob("ffrtmp_*/meta/argument_specs.yml"):
        for entry in yaml.safe_load(spec.read_text(encoding="utf-8"))["argument_specs"].values():
            known |= set(entry["options"])
    known |= set(yaml.safe_load((ROLES / "ffrtmp_common" / "vars" / "main.yml").read_text(
        encoding="utf-8"))["_ffrtmp_common_playbook_variables"])
    used = set()
    for path in [*ROOT.glob("playbooks/*.yml"), *ROLES.glob("*/tasks/*.yml"),
                 *ROLES.glob("*/vars/*.yml"), *ROLES.glob("*/templates/*.j2")]:
        text = re.sub(r"(?m)^\s*#.*$", "", path.read_text(encoding="utf-8"))  # comments name typos
        used |= set(re.findall(r"(?<![\w_])ffrtmp_[a-z][a-z0-9_]*[a-z0-9]\b", text))
    # names that are not variables: the roles and their tags, the filter, the pg_ident map
    roles = {p.name for p in ROLES.iterdir()}
    tags = {f"{r}_{t}" for r in roles for t in ("install", "configure", "run")}
    assert sorted(used - known - roles - tags - {"ffrtmp_unknown_variables", "ffrtmp_superuser"}) == []
