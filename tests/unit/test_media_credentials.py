"""The media credentials file: netrc, read with Python's netrc module, sent only to its hosts."""

from __future__ import annotations

from pathlib import Path

import pytest

from ffrtmp.media.credentials import Credentials, load_credentials


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "media.netrc"
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


def test_logins_by_hostname_only(tmp_path: Path) -> None:
    creds = load_credentials(write(tmp_path, "machine 10.0.0.10 login ffrtmp password s3cr3t\n"
                                             "machine Media.Example login u password p\n"
                                             "default login anyone password leaked\n"))
    assert creds.auth_for("http://10.0.0.10:8088/in/a.mp4") == ("ffrtmp", "s3cr3t")
    assert creds.auth_for("https://media.example/x") == ("u", "p")
    assert creds.auth_for("http://10.0.0.11:8088/in/a.mp4") is None  # the default entry is never used
    assert creds.auth_for("not a url") is None
    assert "s3cr3t" not in repr(creds) and "leaked" not in repr(creds)


def test_no_file_means_no_logins() -> None:
    assert load_credentials(None).auth_for("http://10.0.0.10/") is None
    assert load_credentials("").hosts == ()
    assert Credentials().auth_for("http://h/") is None


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=rf"(?i){tmp_path}/none.netrc cannot be read: no such file"):
        load_credentials(str(tmp_path / "none.netrc"))


def test_a_file_that_is_not_netrc_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "FFRTMP_MEDIA_PASSWORD=s3cr3t\n")
    with pytest.raises(ValueError, match=rf"{path} is not a netrc file") as error:
        load_credentials(path)
    assert "s3cr3t" not in str(error.value)


def test_a_file_naming_no_machine_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="names no machine"):
        load_credentials(write(tmp_path, "# nothing yet\n"))


def test_a_directory_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot be read"):
        load_credentials(str(tmp_path))
