"""Files that other processes read while we write them: atomic JSON, fsync, a file's tail.

The agent, the wrapper and the counters share one job directory and one state dir, each
process reading what another wrote, so every write here is whole or absent, never torn.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PRIVATE = 0o600  # the mode of every file that holds a credential or a token


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: Mapping[str, Any] | list[Any], *,
                      exclusive: bool = False, mode: int = 0o644) -> None:
    """Write ``data`` so readers see the old file or the new one, never a torn one.

    Temp file in the same directory, fsync, then rename (or, with ``exclusive``, a hard link,
    which fails with FileExistsError instead of replacing: no check-then-rename race), then
    fsync the directory so the new name survives a power cut. A file that holds a secret
    passes ``mode=PRIVATE``: it is never readable by others, not even for a moment.
    """
    payload = (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as tmp_file:
            os.fchmod(tmp_file.fileno(), mode)  # mkstemp's 0600 would hide it from operators
            tmp_file.write(payload)
            tmp_file.flush()
            os.fsync(tmp_file.fileno())
        if exclusive:
            _link_exclusive(tmp, path)
        else:
            tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def _link_exclusive(tmp: Path, path: Path) -> None:
    try:
        path.hardlink_to(tmp)
    except FileExistsError:
        raise
    except OSError:
        # A filesystem without hard links: check, then rename (racy only against another
        # writer of the same job directory, which the agent never starts).
        if path.exists():
            raise FileExistsError(f"{path} already exists") from None
        tmp.replace(path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def tail(path: Path, size: int, *, whole_lines: bool = False) -> str | None:
    """The last ``size`` bytes of a file as text; None when there is no such file.

    Long encodes grow their logs and progress files without bound, so readers take the end
    only. ``whole_lines`` drops the first line when the cut may have split it.
    """
    try:
        with path.open("rb") as handle:
            end = handle.seek(0, os.SEEK_END)
            start = max(0, end - size)
            handle.seek(start)
            text = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None
    return text.partition("\n")[2] if whole_lines and start > 0 else text
