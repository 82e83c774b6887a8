"""A clean converge prints no [WARNING]: the causes seen in converge logs, kept out for good.

- a task name templating a variable that is undefined when Ansible prints the task's banner
  (``item`` of its own loop, a variable it registers): ansible-core 2.19 warns
  "Encountered 1 template error ... 'item' is undefined" at every run;
- a module that is the first to need Ansible's remote temporary directory on a fresh host
  (lineinfile, ini_file, replace, blockinfile) creates it itself and warns
  "Module remote_tmp ... did not exist"; a file transfer (copy, template) before it does not;
- a play whose host pattern matches no group of the inventory ("Could not match supplied host
  pattern"): the example inventories define every group the playbooks name.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
ROLES = ROOT / "roles"
TOOLS_VENV = Path(os.environ.get("FFRTMP_MOLECULE_VENV", "/opt/ffrtmp-molecule-venv"))
TEMPLATE = re.compile(r"{{\s*(.*?)\s*}}")


def _tasks(items: list[dict] | None) -> Iterator[dict]:
    for task in items or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from _tasks(task.get(key))


def _task_files() -> list[Path]:
    return sorted([*ROLES.glob("*/tasks/*.yml"), *ROLES.glob("*/handlers/*.yml"),
                   *ROOT.glob("molecule/shared/*.yml"), *ROOT.glob("molecule/shared/tasks/*.yml")])


def _play_tasks(path: Path) -> Iterator[dict]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    if data and any("hosts" in p or "ansible.builtin.import_playbook" in p for p in data):
        for play in data:
            for key in ("pre_tasks", "tasks", "post_tasks", "handlers"):
                yield from _tasks(play.get(key))
    else:
        yield from _tasks(data)


def test_role_and_playbook_task_names_are_plain_text() -> None:
    """The roles' and playbooks' task names template nothing: the banner is the same every run."""
    paths = [*ROLES.glob("*/tasks/*.yml"), *ROLES.glob("*/handlers/*.yml"), *ROOT.glob("playbooks/*.yml")]
    named = [(p.relative_to(ROOT), t["name"]) for p in sorted(paths) for t in _play_tasks(p) if "name" in t]
    assert len(named) > 100
    assert [(str(p), n) for p, n in named if "{{" in str(n) or "{%" in str(n)] == []


def test_no_task_name_templates_its_own_loop_or_register() -> None:
    """Molecule's task files may name a job by an include's variable, never by ``item`` or a result."""
    bad = []
    for path in [*_task_files(), *ROOT.glob("playbooks/*.yml")]:
        for task in _play_tasks(path):
            own = {"item", task.get("register"), (task.get("loop_control") or {}).get("loop_var")}
            for expression in TEMPLATE.findall(str(task.get("name", ""))):
                names = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expression))
                if names & own:
                    bad.append(f"{path.relative_to(ROOT)}: {task['name']}")
    assert bad == []


NEEDS_REMOTE_TMP = {"ansible.builtin.lineinfile", "ansible.builtin.replace",
                    "ansible.builtin.blockinfile", "community.general.ini_file"}
TRANSFERS = {"ansible.builtin.copy", "ansible.builtin.template"}


def test_postgres_transfers_a_file_before_any_module_needs_the_remote_tmp() -> None:
    """The database host runs no ffrtmp_common: its first file-writing module must be a transfer."""
    order = [t for name in ("preflight", "install", "configure", "database")
             for t in _tasks(yaml.safe_load((ROLES / "ffrtmp_postgres" / "tasks" / f"{name}.yml")
                                            .read_text(encoding="utf-8")))]
    kinds = [("tmp" if NEEDS_REMOTE_TMP & set(t) else "transfer") for t in order
             if (NEEDS_REMOTE_TMP | TRANSFERS) & set(t)]
    assert kinds and kinds[0] == "transfer", kinds


def _tool(name: str) -> str:
    candidate = TOOLS_VENV / "bin" / name
    tool = str(candidate) if os.access(candidate, os.X_OK) else shutil.which(name)
    if tool is None:
        pytest.skip(f"{name} is not installed (tools/molecule/setup-host.sh installs it)")
    return tool


@pytest.mark.parametrize("inventory", ["inventory/hosts.yml", "inventory/ha", "minimal"])
def test_syntax_check_of_every_playbook_prints_no_warning(inventory: str, tmp_path: Path) -> None:
    """"minimal": only a master and workers, as Molecule's default scenario (no media, no database)."""
    if inventory == "minimal":
        inventory = str(tmp_path / "hosts.yml")
        Path(inventory).write_text("all: {children: {master: {hosts: {m: }}, workers: {hosts: {w: }}}}\n",
                                   encoding="utf-8")
    tool = _tool("ansible-playbook")
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "ANSIBLE_HOME": str(tmp_path / "home")}
    for playbook in sorted((ROOT / "playbooks").glob("*.yml")):
        result = subprocess.run([tool, "--syntax-check", "-i", inventory, str(playbook)], cwd=ROOT,
                                env=env, capture_output=True, text=True, timeout=300, check=False)
        out = result.stdout + result.stderr
        assert result.returncode == 0, out
        assert "[WARNING]" not in out and "[DEPRECATION WARNING]" not in out, f"{playbook.name}: {out}"


def test_example_inventories_define_every_group_the_playbooks_name() -> None:
    groups = set()
    for path in (ROOT / "playbooks").glob("*.yml"):
        plays = yaml.safe_load(path.read_text(encoding="utf-8"))
        groups |= {p["hosts"] for p in plays if "hosts" in p and "{{" not in p["hosts"]}
        # an optional group is named through groups[...] | default([]): no warning without it
        groups |= set(re.findall(r"groups\['(\w+)'\] \| default\(\[\]\)", " ".join(
            p["hosts"] for p in plays if "{{" in p.get("hosts", ""))))
    for inventory in ("inventory/hosts.yml", "inventory/ha/hosts.yml"):
        children = yaml.safe_load((ROOT / inventory).read_text(encoding="utf-8"))["all"]["children"]
        assert groups <= set(children), f"{inventory} lacks {sorted(groups - set(children))}"


LEFT_OVER = ("ffrtmp-worker.service: Found left-over process 4242 (python3) in control group while"
             " starting unit. Ignoring.\nThis usually indicates unclean termination of a previous run,"
             " or service implementation deficiencies.")


def test_the_runbook_documents_the_left_over_warning_and_filters_only_it() -> None:
    """systemd 252's entry at each agent restart during encodes (KillMode=process): expected, and
    the runbook's ``journalctl -p warning --grep`` leaves out that entry and nothing else."""
    text = (ROOT / "docs" / "runbook.md").read_text(encoding="utf-8")
    assert LEFT_OVER.split("\n", 1)[0] in text and LEFT_OVER.split("\n", 1)[1] in text
    command = re.search(r"journalctl -u ffrtmp-worker -p warning --since -1h --grep '([^']+)'", text)
    assert command, "the worker check filters the expected warning"
    pattern = re.compile(command.group(1))  # journalctl matches MESSAGE with PCRE2; same syntax here
    assert not pattern.search(LEFT_OVER)
    for other in ("ffrtmp-worker.service: Watchdog timeout (limit 30s)!",
                  "heartbeat failed: master unreachable; Found left-over process in a job log",
                  "ffrtmp-worker.service: Failed with result 'exit-code'."):
        assert pattern.search(other), other
    unit = (ROLES / "ffrtmp_worker" / "templates" / "ffrtmp-worker.service.j2").read_text(encoding="utf-8")
    assert "KillMode=process" in unit and "SyslogIdentifier=ffrtmp-worker" in unit
