"""FFRTMP_DATABASE_PASSWORD_FILE: the master's PostgreSQL password comes from a file, checked at start.

The password never rides in the URL (logged, shown by ``ps``, kept in the unit's environment);
a file the master cannot use stops it naming the variable, as the token files do.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ffrtmp import config
from tests.conftest import master_env

PG = "postgresql://ffrtmp@db.example:5432/ffrtmp"
KEY = "FFRTMP_DATABASE_PASSWORD_FILE"


def _password_file(tmp_path: Path, text: str = "s3cret-Pass\n", mode: int = 0o640) -> Path:
    path = tmp_path / "database-password"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def _load(tmp_path: Path, **env: str) -> config.MasterSettings:
    return config.load("master", {}, master_env(tmp_path, **env))


def test_the_password_file_is_read_and_kept_out_of_the_settings(tmp_path: Path) -> None:
    path = _password_file(tmp_path, "  s3cret-Pass  \nsecond line is ignored\n")
    settings = _load(tmp_path, FFRTMP_DATABASE=PG, **{KEY: str(path)})
    assert settings.database_password_file == str(path)
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in str(vars(settings))
    assert config.read_password_file(str(path)) == "s3cret-Pass"


def test_no_password_file_is_the_default(tmp_path: Path) -> None:
    assert _load(tmp_path, FFRTMP_DATABASE=PG).database_password_file is None


@pytest.mark.parametrize(("make", "reason"), [
    (lambda d: d / "missing", r"cannot read the password file \(No such file or directory\)"),
    (lambda d: d, r"cannot read the password file \(Is a directory\)"),
    (lambda d: _password_file(d, mode=0o644),
     r"the password file is open to other users \(mode 0644\): chmod o-rwx"),
    (lambda d: _password_file(d, mode=0o602), r"the password file is open to other users \(mode 0602\)"),
    (lambda d: _password_file(d, "\n\n"), r"the password file is empty"),
    (lambda d: _password_file(d, ""), r"the password file is empty"),
    (lambda d: d / "latin1.bin", r"cannot read the password file \(not UTF-8 text\)"),
])
def test_an_unusable_password_file_stops_the_start_naming_the_variable(
        tmp_path: Path, make: object, reason: str) -> None:
    (tmp_path / "latin1.bin").write_bytes(b"caf\xe9\n")
    (tmp_path / "latin1.bin").chmod(0o600)
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(config.ConfigError, match=rf"^{KEY}='{path}': {reason}") as caught:
        _load(tmp_path, FFRTMP_DATABASE=PG, **{KEY: str(path)})
    assert caught.value.env == KEY


def test_the_file_is_not_read_without_secrets(tmp_path: Path) -> None:
    values = config.load("master", {}, master_env(tmp_path, FFRTMP_DATABASE=PG, **{KEY: "/nonexistent"}),
                         read_secrets=False)
    assert values.database_password_file == "/nonexistent"  # type: ignore[attr-defined]


def test_a_password_file_needs_a_postgresql_database(tmp_path: Path) -> None:
    path = _password_file(tmp_path)
    with pytest.raises(config.ConfigError, match=rf"^{KEY}=.*needs a postgresql:// FFRTMP_DATABASE"):
        _load(tmp_path, **{KEY: str(path)})


@pytest.mark.parametrize("url", [
    "postgresql://ffrtmp:hunter2-secret@db/ffrtmp",
    "postgres://ffrtmp:hunter2-secret@db/ffrtmp",
    "postgresql://ffrtmp:@db/ffrtmp",
    "postgresql://ffrtmp@db/ffrtmp?sslmode=require&password=hunter2-secret",
    "postgresql://ffrtmp@[db/ffrtmp?hunter2-secret",
])
def test_a_password_in_the_url_is_refused_without_echoing_it(tmp_path: Path, url: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        _load(tmp_path, FFRTMP_DATABASE=url)
    assert str(caught.value).startswith("FFRTMP_DATABASE: the URL holds a password")
    assert "hunter2" not in str(caught.value)


def test_a_url_with_a_user_and_parameters_but_no_password_is_fine(tmp_path: Path) -> None:
    url = "postgresql://ffrtmp@db:5432/ffrtmp?sslmode=verify-full&options=-csearch_path%3Dx"
    assert _load(tmp_path, FFRTMP_DATABASE=url).database == url
