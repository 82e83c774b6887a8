"""Checks of the deployment side (roles, playbooks, monitoring files) that need no test hosts.

The Molecule scenario (tools/molecule/run.sh) proves the roles on real systemd; these tests
keep the static contracts honest: role argument specs, the env-file mapping against
``ffrtmp.config.SETTINGS``, the unit and logrotate templates, lint, and the alert rules.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest

yaml = pytest.importorskip("yaml")

from ffrtmp import config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ROLES = ROOT / "roles"
ROLE_NAMES = ("ffrtmp_common", "ffrtmp_master", "ffrtmp_worker", "ffrtmp_media", "ffrtmp_postgres")
TOOLS_VENV = Path(os.environ.get("FFRTMP_MOLECULE_VENV", "/opt/ffrtmp-molecule-venv"))


def _load(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _tool(name: str) -> str | None:
    """A tool on PATH, or in the venv tools/molecule/setup-host.sh creates."""
    candidate = TOOLS_VENV / "bin" / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which(name)


# --- roles: argument specs document every default ------------------------------------


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_argument_specs_match_defaults(role: str) -> None:
    defaults = _load(ROLES / role / "defaults" / "main.yml") or {}
    spec = _load(ROLES / role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(spec) == sorted(defaults), (
        f"{role}: only in defaults {sorted(set(defaults) - set(spec))}, "
        f"only in argument_specs {sorted(set(spec) - set(defaults))}")
    for name, option in spec.items():
        assert option.get("description"), f"{role}: {name} has no description"
        assert option.get("type"), f"{role}: {name} has no type"
        if not option.get("required"):
            assert option.get("default") == defaults[name], (
                f"{role}: {name} default differs from defaults/main.yml")


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_public_variables_are_prefixed(role: str) -> None:
    defaults = _load(ROLES / role / "defaults" / "main.yml") or {}
    prefix = "ffrtmp_" if role == "ffrtmp_common" else f"{role}_"
    assert all(name.startswith(prefix) for name in defaults), sorted(defaults)
    internal = _load(ROLES / role / "vars" / "main.yml") or {}
    assert all(name.startswith("_ffrtmp_") for name in internal), sorted(internal)


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_roles_use_modules_not_shell(role: str) -> None:
    """Every task is a module call; a shell line would hide what changes from check mode."""
    def tasks(items: list[dict]):
        for task in items or []:
            yield task
            for key in ("block", "rescue", "always"):
                yield from tasks(task.get(key, []))

    forbidden = {"shell", "raw", "ansible.builtin.shell", "ansible.builtin.raw"}
    for path in sorted([*(ROLES / role).glob("tasks/*.yml"), *(ROLES / role).glob("handlers/*.yml")]):
        for task in tasks(_load(path)):
            assert not forbidden & set(task), f"{path.name}: {task.get('name')}"


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_role_layout_is_complete(role: str) -> None:
    for part in ("defaults/main.yml", "meta/main.yml", "meta/argument_specs.yml", "tasks/main.yml",
                 "tasks/preflight.yml" if role != "ffrtmp_common" else "tasks/install.yml"):
        assert (ROLES / role / part).is_file(), f"{role}: {part}"
    if (ROLES / role / "handlers" / "main.yml").is_file():
        for handler in _load(ROLES / role / "handlers" / "main.yml"):
            # a handler must not act in check mode (nothing it would restart was changed)
            assert "not ansible_check_mode" in handler.get("when", []), handler["name"]


def test_common_notifications_reach_both_parent_roles() -> None:
    """ffrtmp_common runs inside either role's play: each topic it notifies needs a listener in both."""
    topics = {t["notify"] for t in _load(ROLES / "ffrtmp_common" / "tasks" / "install.yml")
              + _load(ROLES / "ffrtmp_common" / "tasks" / "configure.yml") if "notify" in t}
    assert "ffrtmp media credentials changed" in topics
    for role in ("ffrtmp_master", "ffrtmp_worker"):
        handlers = _load(ROLES / role / "handlers" / "main.yml")
        heard = {h["name"] for h in handlers} | {
            topic for h in handlers for topic in ([h["listen"]] if isinstance(h.get("listen"), str)
                                                  else h.get("listen", []))}
        assert topics <= heard, f"{role} does not hear {sorted(topics - heard)}"


# --- the env files render exactly the settings of config.py ------------------------------


ENV_DICTS = {
    "ffrtmp_master": ("_ffrtmp_master_env", config.MASTER),
    "ffrtmp_worker": ("_ffrtmp_worker_env", config.AGENT),
}


@pytest.mark.parametrize("role", sorted(ENV_DICTS))
def test_env_file_mapping_matches_settings(role: str) -> None:
    dict_name, process = ENV_DICTS[role]
    mapping = _load(ROLES / role / "vars" / "main.yml")[dict_name]
    expected = [s.env for s in config.settings_for(process)]
    assert sorted(mapping) == sorted(expected), (
        f"{role}: env file lacks {sorted(set(expected) - set(mapping))}, "
        f"has unknown {sorted(set(mapping) - set(expected))}")


@pytest.mark.parametrize("role", sorted(ENV_DICTS))
def test_env_values_come_from_variables_named_after_the_setting(role: str) -> None:
    dict_name, _ = ENV_DICTS[role]
    mapping = _load(ROLES / role / "vars" / "main.yml")[dict_name]
    for env, template in mapping.items():
        setting = env.removeprefix("FFRTMP_").lower()
        names = {f"{role}_{setting}", f"ffrtmp_{setting}", f"_{role}_{setting}",
                 # the master's FFRTMP_MASTER_BIND is ffrtmp_master_bind
                 f"{role}_{setting.removeprefix(role.removeprefix('ffrtmp_') + '_')}"}
        assert any(re.search(rf"\b{re.escape(n)}\b", template) for n in names), (
            f"{role}: {env} is fed by {template!r}, expected one of {sorted(names)}")


@pytest.mark.parametrize("role", sorted(ENV_DICTS))
def test_env_template_renders_the_dict_only(role: str) -> None:
    dict_name, _ = ENV_DICTS[role]
    name = "master" if role == "ffrtmp_master" else "worker"
    text = (ROLES / role / "templates" / f"{name}.env.j2").read_text(encoding="utf-8")
    assert f"{dict_name}.items()" in text
    assert "token" not in re.sub(r"(?m)^#.*$", "", text).lower().replace("token_file", "")


# --- units and logrotate ---------------------------------------------------------------


def _unit(role: str, unit: str) -> str:
    return (ROLES / role / "templates" / f"{unit}.service.j2").read_text(encoding="utf-8")


def test_worker_unit_keeps_workloads_alive() -> None:
    text = _unit("ffrtmp_worker", "ffrtmp-worker")
    for line in ("Type=notify", "NotifyAccess=main", "Delegate=yes", "KillMode=process",
                 "TimeoutStopSec=60", "Restart=on-failure", "RestartPreventExitStatus=78",
                 "WatchdogSec=", "ExecStart={{ ffrtmp_install_dir }}/bin/ffrtmp agent",
                 "EnvironmentFile={{ ffrtmp_config_dir }}/worker.env", "NoNewPrivileges=yes",
                 "ProtectControlGroups=no"):
        assert line in text, line
    assert "\nProtectControlGroups=yes" not in text


def test_master_unit_outlasts_the_graceful_timeout() -> None:
    text = _unit("ffrtmp_master", "ffrtmp-master")
    for line in ("Type=notify", "NotifyAccess=main", "Restart=on-failure",
                 "RestartPreventExitStatus=78", "ExecStart={{ ffrtmp_install_dir }}/bin/ffrtmp master",
                 "TimeoutStopSec={{ _ffrtmp_master_timeout_stop_s }}", "NoNewPrivileges=yes"):
        assert line in text, line
    internal = _load(ROLES / "ffrtmp_master" / "vars" / "main.yml")
    margin = re.search(r"\+ (\d+)", internal["_ffrtmp_master_timeout_stop_s"])
    assert margin and int(margin.group(1)) >= 10
    # the seed's 60 s for both units, and never at or below the graceful timeout
    stop_s = jinja2.Environment(autoescape=True).from_string(internal["_ffrtmp_master_timeout_stop_s"])
    defaults = _load(ROLES / "ffrtmp_master" / "defaults" / "main.yml")
    assert stop_s.render(ffrtmp_master_graceful_timeout=defaults["ffrtmp_master_graceful_timeout"]) == "60"
    assert defaults["ffrtmp_master_graceful_timeout"] == 30
    assert stop_s.render(ffrtmp_master_graceful_timeout=90) == "105"


def test_master_unit_keeps_the_metrics_files_in_its_runtime_directory() -> None:
    """gunicorn workers share prometheus files: tmpfs, private to the unit, gone at stop."""
    text = _unit("ffrtmp_master", "ffrtmp-master")
    assert "\nRuntimeDirectory={{ _ffrtmp_master_unit }}\n" in text
    assert "\nRuntimeDirectoryMode=0700\n" in text
    assert "RuntimeDirectoryPreserve" not in text
    internal = _load(ROLES / "ffrtmp_master" / "vars" / "main.yml")
    assert internal["_ffrtmp_master_unit"] == "ffrtmp-master"


def test_logrotate_reopens_without_signals() -> None:
    text = (ROLES / "ffrtmp_common" / "templates" / "logrotate.j2").read_text(encoding="utf-8")
    body = re.sub(r"(?m)^#.*$", "", text)
    for directive in ("daily", "rotate {{ ffrtmp_log_rotate_days }}", "compress", "delaycompress",
                      "missingok", "notifempty", "create 0640 {{ ffrtmp_user }} {{ ffrtmp_group }}",
                      "su {{ ffrtmp_user }} {{ ffrtmp_group }}"):
        assert directive in body, directive
    assert "postrotate" not in body and "copytruncate" not in body
    defaults = _load(ROLES / "ffrtmp_common" / "defaults" / "main.yml")
    assert defaults["ffrtmp_log_rotate_days"] == 14


# --- the media store -------------------------------------------------------------------

MEDIA = ROLES / "ffrtmp_media"


def test_media_store_serves_webdav_as_the_design_says() -> None:
    text = (MEDIA / "templates" / "ffrtmp-media.conf.j2").read_text(encoding="utf-8")
    body = re.sub(r"(?m)^\s*#.*$", "", text)
    for directive in ("listen {{ ffrtmp_media_port }}", "root {{ ffrtmp_media_root }};",
                      "client_body_temp_path {{ _ffrtmp_media_temp_dir }};", "client_max_body_size 0;",
                      "dav_methods PUT DELETE MKCOL COPY MOVE;", "create_full_put_path on;",
                      "dav_access user:rw group:r all:r;", "autoindex on;", "autoindex_format json;",
                      'auth_basic "ffrtmp media";',
                      "auth_basic_user_file {{ _ffrtmp_media_htpasswd_file }};"):
        assert directive in body, directive
    # Basic auth on every method: no location may lift it or open the writes
    assert "auth_basic off" not in body and "limit_except" not in body
    internal = _load(MEDIA / "vars" / "main.yml")
    assert internal["_ffrtmp_media_temp_dir"] == "{{ ffrtmp_media_root }}/.tmp"  # same filesystem
    defaults = _load(MEDIA / "defaults" / "main.yml")
    assert defaults["ffrtmp_media_port"] == 8088 and defaults["ffrtmp_media_root"] == "/srv/media"


def test_media_store_credential_is_generated_once_and_hashed_stably() -> None:
    tasks = _load(MEDIA / "tasks" / "configure.yml")
    by_name = {t["name"]: t for t in tasks}
    generate = by_name["Generate the store's password once"]["ansible.builtin.copy"]
    assert generate["force"] is False and generate["mode"] == "0600" and generate["owner"] == "root"
    htpasswd = by_name["Write the htpasswd file"]
    assert "password_hash('sha512'" in htpasswd["ansible.builtin.copy"]["content"]
    assert "hash('sha256')" in htpasswd["ansible.builtin.copy"]["content"]  # salt from the password
    for task in tasks:
        if any(w in task["name"].lower() for w in ("password", "htpasswd")):
            assert task.get("no_log") is True, task["name"]


def test_media_store_hardens_nginx() -> None:
    text = (MEDIA / "templates" / "nginx-hardening.conf.j2").read_text(encoding="utf-8")
    for line in ("[Service]", "NoNewPrivileges=yes", "ProtectSystem=full", "ProtectHome=yes",
                 "PrivateTmp=yes", "ReadWritePaths=-{{ ffrtmp_media_root }} -{{ ffrtmp_media_log_dir }}"):
        assert line in text, line


def test_clients_get_a_netrc_readable_by_the_agent_only() -> None:
    tasks = _load(ROLES / "ffrtmp_common" / "tasks" / "configure.yml")
    netrc = next(t for t in tasks if t["name"] == "Write the media store credentials")
    module = netrc["ansible.builtin.template"]
    assert (module["owner"], module["group"], module["mode"]) == ("root", "{{ ffrtmp_group }}", "0640")
    assert netrc["no_log"] is True
    template = (ROLES / "ffrtmp_common" / "templates" / "media.netrc.j2").read_text(encoding="utf-8")
    assert "machine {{ _ffrtmp_common_media_machine }} login" in template
    defaults = _load(ROLES / "ffrtmp_common" / "defaults" / "main.yml")
    assert defaults["ffrtmp_media_credentials_file"] == "/etc/ffrtmp/media.netrc"


def test_site_deploys_each_part_before_its_clients() -> None:
    plays = [p["ansible.builtin.import_playbook"] for p in _load(ROOT / "playbooks" / "site.yml")]
    assert plays == ["media.yml", "database.yml", "master.yml", "workers.yml"]
    hosts = _load(ROOT / "inventory" / "hosts.yml")["all"]["children"]
    assert list(hosts["media"]["hosts"]) == list(hosts["master"]["hosts"])
    database = _load(ROOT / "playbooks" / "database.yml")
    assert [p["hosts"] for p in database] == ["{{ groups['database'] | default([]) }}"]
    media = _load(ROOT / "playbooks" / "media.yml")
    assert [p["hosts"] for p in media] == ["{{ groups['media'] | default([]) }}"]
    assert [r["role"] for r in database[0]["roles"]] == ["ffrtmp_postgres"]


def test_masters_are_deployed_one_at_a_time() -> None:
    """Each master is ready (the role waits for /ready) before the next is touched."""
    (play,) = _load(ROOT / "playbooks" / "master.yml")
    assert play["hosts"] == "master" and play["serial"] == 1 and play["max_fail_percentage"] == 0
    assert [r["role"] for r in play["roles"]] == ["ffrtmp_master"]
    check = _load(ROLES / "ffrtmp_master" / "tasks" / "check.yml")
    assert "/ready" in str(check)


def test_worker_mounts_nfs_with_the_posix_collection() -> None:
    tasks = _load(ROLES / "ffrtmp_worker" / "tasks" / "nfs.yml")
    mount = next(t for t in tasks if "ansible.posix.mount" in t)
    assert mount["ansible.posix.mount"]["state"] == "mounted"
    requirements = (ROOT / "tools" / "molecule" / "requirements.txt").read_text(encoding="utf-8")
    assert re.search(r"(?m)^ansible==\d+\.\d+\.\d+$", requirements)  # carries ansible.posix


def test_rolling_update_stops_at_the_first_failure() -> None:
    plays = _load(ROOT / "playbooks" / "rolling_update.yml")
    rolls = [p for p in plays if p.get("serial")]
    # the masters first, one at a time, then the workers as before
    assert [p["hosts"] for p in rolls] == ["master", "workers"]
    for roll in rolls:
        assert roll["serial"] == 1 and roll["max_fail_percentage"] == 0
    assert [r["role"] for r in rolls[0]["roles"]] == ["ffrtmp_master"]
    text = (ROOT / "playbooks" / "rolling_update.yml").read_text(encoding="utf-8")
    assert "/drain" in text and "/undrain" in text


# --- PostgreSQL and several masters ------------------------------------------------------

POSTGRES = ROLES / "ffrtmp_postgres"


def _tasks_by_name(path: Path) -> dict[str, dict]:
    def walk(items: list[dict]):
        for task in items or []:
            yield task
            yield from walk(task.get("block", []))
    return {t["name"]: t for t in walk(_load(path))}


def test_postgres_role_has_least_privilege_and_never_drops() -> None:
    tasks = _tasks_by_name(POSTGRES / "tasks" / "database.yml")
    user = tasks["Create the ffrtmp role with a SCRAM-hashed password"]
    flags = user["community.postgresql.postgresql_user"]["role_attr_flags"].split(",")
    assert {"NOSUPERUSER", "NOCREATEDB", "NOCREATEROLE", "NOREPLICATION", "LOGIN"} <= set(flags)
    assert user["no_log"] is True
    assert "password_encryption=scram-sha-256" in user["environment"]["PGOPTIONS"]
    db = tasks["Create the database owned by the role"]["community.postgresql.postgresql_db"]
    assert db["state"] == "present" and db["owner"] == "{{ ffrtmp_postgres_user }}"
    revoke = tasks["Keep other roles out of the database"]["community.postgresql.postgresql_privs"]
    assert (revoke["roles"], revoke["state"]) == ("PUBLIC", "absent")
    # nothing in the role removes a database, a role, a file or a cluster (but PUBLIC's rights)
    for path in sorted([*POSTGRES.glob("tasks/*.yml"), *POSTGRES.glob("handlers/*.yml")]):
        for name, task in _tasks_by_name(path).items():
            args = [v for k, v in task.items() if "." in k and isinstance(v, dict)]
            if any(a.get("state") == "absent" for a in args):
                assert name == "Keep other roles out of the database", name
            assert not re.search(r"pg_dropcluster|dropdb|DROP ", str(task)), name


def test_postgres_password_is_generated_once_and_kept_private() -> None:
    configure = _tasks_by_name(POSTGRES / "tasks" / "configure.yml")
    generate = configure["Generate the role's password once"]
    copy = generate["ansible.builtin.copy"]
    assert copy["force"] is False and copy["mode"] == "0600" and copy["owner"] == "root"
    assert generate["no_log"] is True
    assert configure["Create the password directory"]["ansible.builtin.file"]["mode"] == "0700"
    internal = _load(POSTGRES / "vars" / "main.yml")
    assert internal["_ffrtmp_postgres_password_file"] == (
        "{{ ffrtmp_postgres_password_dir }}/{{ ffrtmp_postgres_user }}.password")
    handling = {"ansible.builtin.copy", "ansible.builtin.slurp", "community.postgresql.postgresql_user"}
    for path in POSTGRES.glob("tasks/*.yml"):
        for name, task in _tasks_by_name(path).items():
            if "password" in name.lower() and handling & set(task):
                assert task.get("no_log") is True, name


def test_postgres_listens_and_lets_in_only_the_masters_with_scram() -> None:
    conf = (POSTGRES / "templates" / "ffrtmp.conf.j2").read_text(encoding="utf-8")
    assert "listen_addresses = '{{ _ffrtmp_postgres_listen | join(\",\") }}'" in conf
    assert "\npassword_encryption = scram-sha-256\n" in conf
    assert "ssl = on" in conf and "{% if _ffrtmp_postgres_tls | bool %}" in conf
    text = (POSTGRES / "templates" / "pg_hba.conf.j2").read_text(encoding="utf-8")
    hba = [line for line in text.splitlines() if line and not line.startswith(("#", "{{ ansible_managed"))]
    local = [line.split() for line in hba if line.startswith("local")]
    assert local == [["local", db, "postgres", "peer", "map=ffrtmp_superuser"]
                     for db in ("all", "replication")]
    configure = _tasks_by_name(POSTGRES / "tasks" / "configure.yml")
    ident = configure["Map the OS users root and postgres to the superuser"]
    assert ident["loop"] == ["root", "postgres"]  # root acts as the superuser without sudo or a password
    remote = [line for line in hba if not line.startswith(("local", "{%"))]
    assert len(remote) == 1 and remote[0].endswith(" scram-sha-256")
    assert "_ffrtmp_postgres_clients" in "\n".join(hba)
    for word in ("trust", "md5", "password ", " all "):
        assert word not in remote[0], word


def test_postgres_handlers_restart_the_cluster_and_reload_for_pg_hba() -> None:
    handlers = {h["name"]: h for h in _load(POSTGRES / "handlers" / "main.yml")}
    assert handlers["Restart PostgreSQL"]["ansible.builtin.systemd_service"]["state"] == "restarted"
    assert handlers["Reload PostgreSQL"]["ansible.builtin.systemd_service"]["state"] == "reloaded"
    configure = _tasks_by_name(POSTGRES / "tasks" / "configure.yml")
    assert configure["Write the client authentication rules"]["notify"] == "Reload PostgreSQL"
    assert configure["Write the server settings of ffrtmp"]["notify"] == "Restart PostgreSQL"


def test_master_reads_the_database_password_from_a_file_only() -> None:
    internal = _load(ROLES / "ffrtmp_master" / "vars" / "main.yml")
    assert internal["_ffrtmp_master_env"]["FFRTMP_DATABASE_PASSWORD_FILE"] == (
        "{{ _ffrtmp_master_database_password_file }}")
    deliver = _tasks_by_name(ROLES / "ffrtmp_master" / "tasks" / "database_password.yml")
    write = deliver["Write the database password file"]
    module = write["ansible.builtin.copy"]
    assert (module["owner"], module["group"], module["mode"]) == ("root", "{{ ffrtmp_group }}", "0640")
    assert write["no_log"] is True and deliver["Read the database password on the database host"]["no_log"]
    preflight = _tasks_by_name(ROLES / "ffrtmp_master" / "tasks" / "preflight.yml")
    refuse = preflight["Assert that the database URL holds no password"]
    assert "urlsplit('password') is none" in str(refuse["ansible.builtin.assert"]["that"])
    assert "{{" not in refuse["ansible.builtin.assert"]["fail_msg"]  # never echoes the URL
    unit = _unit("ffrtmp_master", "ffrtmp-master")
    assert "password" not in unit.lower() and "Environment=" not in unit


def test_worker_joins_every_master_url_in_order() -> None:
    env = jinja2.Environment(autoescape=False)  # noqa: S701 - renders a plain string, not HTML
    internal = _load(ROLES / "ffrtmp_worker" / "vars" / "main.yml")
    joined = env.from_string(internal["_ffrtmp_worker_master_url"])
    assert joined.render(_ffrtmp_worker_master_url_list=["http://m1:8080", "http://m2:8080"]) == (
        "http://m1:8080,http://m2:8080")
    defaults = _load(ROLES / "ffrtmp_worker" / "defaults" / "main.yml")
    assert defaults["ffrtmp_worker_master_urls"] == [] and defaults["ffrtmp_worker_master_url"] == ""


def test_ha_inventory_example_has_two_masters_a_database_and_workers_listing_both() -> None:
    hosts = _load(ROOT / "inventory" / "ha" / "hosts.yml")["all"]["children"]
    assert len(hosts["master"]["hosts"]) == 2 and len(hosts["database"]["hosts"]) == 1
    group_vars = ROOT / "inventory" / "ha" / "group_vars"
    master = _load(group_vars / "master.yml")
    database = next(iter(hosts["database"]["hosts"]))
    assert master["ffrtmp_master_database"] == f"postgresql://ffrtmp@{database}:5432/ffrtmp"
    assert master["ffrtmp_master_database_password_file"]
    assert master["ffrtmp_package_spec"] == "ffrtmp[postgres]"  # the driver is the postgres extra
    preflight = _tasks_by_name(ROLES / "ffrtmp_master" / "tasks" / "preflight.yml")
    assert "Assert that a PostgreSQL master installs the driver" in preflight
    urls = _load(group_vars / "workers.yml")["ffrtmp_worker_master_urls"]
    assert urls == [f"http://{name}:8080" for name in hosts["master"]["hosts"]]


def test_the_guest_image_carries_postgresql_for_offline_guests() -> None:
    script = (ROOT / "tools" / "molecule" / "build-image.sh").read_text(encoding="utf-8")
    packages = re.search(r'(?m)^EXTRA_PKGS="([^"]*)"', script)
    assert packages and {"postgresql", "python3-psycopg2"} <= set(packages.group(1).split())
    requirements = (ROOT / "tools" / "molecule" / "requirements.txt").read_text(encoding="utf-8")
    assert re.search(r"(?m)^ansible==\d", requirements)  # carries community.postgresql


RENDER_INVENTORY = """
all:
  vars: {ansible_connection: local, ansible_python_interpreter: "{{ ansible_playbook_python }}"}
  children:
    database: {hosts: {db: {ansible_host: 10.78.1.20}}}
    master:
      hosts:
        m1: {ansible_host: 10.78.1.21}
        m2: {ansible_host: "fd00::22", ffrtmp_master_threads: 16}
    workers: {hosts: {w1: {ansible_host: 10.78.1.23}}}
"""
RENDER_PLAY = """
- hosts: db,m2,w1
  gather_facts: false
  vars_files: {files}
  tasks:
    - ansible.builtin.set_fact:
        ansible_facts: {{distribution: Debian, distribution_major_version: "12"}}
    - ansible.builtin.copy:
        content: "{{{{ {{'postgres': {{'version': _ffrtmp_postgres_version | trim,
          'listen': _ffrtmp_postgres_listen, 'clients': _ffrtmp_postgres_clients,
          'needed': _ffrtmp_postgres_needed_connections | int}},
          'master': {{'env': _ffrtmp_master_env['FFRTMP_DATABASE_PASSWORD_FILE'] | trim,
          'source': _ffrtmp_master_database_password_source | trim,
          'deliver': _ffrtmp_master_deliver_password | bool, 'copies': _ffrtmp_master_copies_tokens | bool,
          'first': _ffrtmp_master_first}},
          'worker': _ffrtmp_worker_master_url}} | to_json }}}}"
        dest: "{out}/{{{{ inventory_hostname }}}}.json"
        mode: "0600"
      vars:
        ffrtmp_master_database: postgresql://ffrtmp@db:5432/ffrtmp
"""


def test_role_variables_render_for_a_two_master_inventory(tmp_path: Path) -> None:
    """The derived addresses, URLs and paths, rendered by Ansible itself from a two-master inventory."""
    tool = _tool("ansible-playbook")
    if tool is None:
        pytest.skip("ansible-playbook is not installed (tools/molecule/setup-host.sh installs it)")
    roles = ("ffrtmp_common", "ffrtmp_postgres", "ffrtmp_master", "ffrtmp_worker")
    files = [str(ROLES / role / kind / "main.yml") for role in roles for kind in ("defaults", "vars")
             if (ROLES / role / kind).is_dir()]
    (tmp_path / "inventory.yml").write_text(RENDER_INVENTORY, encoding="utf-8")
    play = RENDER_PLAY.format(files=json.dumps(files), out=tmp_path)
    (tmp_path / "play.yml").write_text(play, encoding="utf-8")
    result = _run([tool, "-i", str(tmp_path / "inventory.yml"), str(tmp_path / "play.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
    db, m2, w1 = (json.loads((tmp_path / f"{host}.json").read_text(encoding="utf-8"))
                  for host in ("db", "m2", "w1"))
    assert db["postgres"] == {"version": "15", "listen": ["localhost", "10.78.1.20"],
                              "clients": ["fd00::22/128", "10.78.1.21/32"], "needed": 2 * 2 * (32 + 4)}
    assert m2["master"] == {"env": "/etc/ffrtmp/database-password",
                            "source": "/etc/ffrtmp/postgres/ffrtmp.password",
                            "deliver": True, "copies": True, "first": "m1"}
    assert w1["worker"] == "http://m1:8080,http://m2:8080"


# --- lint ------------------------------------------------------------------------------


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "PY_COLORS": "0"}
    bindir = str(Path(argv[0]).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")  # ansible-lint runs ansible-* via PATH
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
                          check=False)


def test_yamllint_is_clean() -> None:
    tool = _tool("yamllint")
    if tool is None:
        pytest.skip("yamllint is not installed (tools/molecule/setup-host.sh installs it)")
    result = _run([tool, "--strict", "."])
    assert result.returncode == 0, result.stdout + result.stderr


def test_ansible_lint_production_profile_is_clean() -> None:
    tool = _tool("ansible-lint")
    if tool is None:
        pytest.skip("ansible-lint is not installed (tools/molecule/setup-host.sh installs it)")
    result = _run([tool, "--profile", "production", "--nocolor"])
    assert result.returncode == 0, result.stdout + result.stderr


# --- monitoring ------------------------------------------------------------------------

PROMETHEUS = ROOT / "files" / "prometheus"
MASTER_SERIES = {"ffrtmp_jobs_pending", "ffrtmp_jobs_by_state", "ffrtmp_nodes_offline",
                 "ffrtmp_nodes_by_status", "ffrtmp_job_queue_wait_seconds_bucket",
                 "ffrtmp_job_run_seconds_bucket", "ffrtmp_http_requests_total"}
WORKER_SERIES = {"worker_heartbeat_failures_total", "worker_heartbeat_consecutive_failures",
                 "worker_disk_usage_percent", "worker_active_jobs", "worker_free_slots",
                 "worker_results_spooled", "worker_ready", "worker_job_progress_percent",
                 "wrapper_jobs_total", "wrapper_jobs_success", "wrapper_jobs_failed",
                 "wrapper_platform_sla_met", "wrapper_platform_sla_failed"}
SERIES = re.compile(r"\b((?:ffrtmp|worker|wrapper)_[a-z_]+)\b")


def test_alerts_cover_the_seed_with_exported_series() -> None:
    rules = _load(PROMETHEUS / "alerts.yml")["groups"][0]["rules"]
    exprs = {r["alert"]: r["expr"] for r in rules}
    assert len(exprs) == 6  # the seed's five and the maintenance reminder
    used = {m for e in exprs.values() for m in SERIES.findall(e)}
    assert used == {"ffrtmp_jobs_pending", "ffrtmp_nodes_offline", "worker_heartbeat_failures_total",
                    "worker_disk_usage_percent", "wrapper_platform_sla_failed", "ffrtmp_nodes_by_status"}
    # a node in maintenance (drained, its agent stopped on purpose) is not offline
    assert exprs["FfrtmpNodesOffline"] == "ffrtmp_nodes_offline > 0"
    assert 'status="maintenance"' in exprs["FfrtmpNodesInMaintenance"]
    for rule in rules:
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_dashboard_uses_only_exported_series() -> None:
    dash = json.loads((ROOT / "files" / "grafana" / "ffrtmp-dashboard.json").read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    used = {m for e in exprs for m in SERIES.findall(e)}
    assert used <= MASTER_SERIES | WORKER_SERIES, sorted(used - MASTER_SERIES - WORKER_SERIES)
    assert {"ffrtmp_jobs_pending", "ffrtmp_nodes_offline", "worker_job_progress_percent",
            "wrapper_platform_sla_failed"} <= used


def _promtool() -> str:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("promtool is not installed (Debian package 'prometheus')")
    return tool


def test_promtool_check_rules() -> None:
    result = _run([_promtool(), "check", "rules", str(PROMETHEUS / "alerts.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules() -> None:
    result = _run([_promtool(), "test", "rules", str(PROMETHEUS / "alerts_test.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_config() -> None:
    result = _run([_promtool(), "check", "config", str(PROMETHEUS / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
