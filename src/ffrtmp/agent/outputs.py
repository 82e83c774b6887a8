"""A job's local outputs: the directories they need, and staging until the job succeeds.

Files, and VOD playlists, are written under a hidden per-attempt name and renamed into place
only when the job succeeded, so a half-written output never appears under its real name.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from ffrtmp.files import fsync_dir
from ffrtmp.jobspec import JobSpec


def staging_path(final: str, stage: str) -> str:
    """Where FFmpeg writes ``final`` until the job succeeds: hidden, in the same directory
    (so publishing it is one atomic rename), and unique to the attempt."""
    path = PurePosixPath(final)
    return str(path.with_name(f".{path.name}.{stage}.part"))


def staged_outputs(spec: JobSpec) -> list[str]:
    """The outputs that must not appear before the job succeeded.

    Files, and VOD playlists (their segments keep their names: only the playlist makes them
    a finished stream). A live job's event playlist is written in place, because viewers
    follow it while the job runs; it carries no ``#EXT-X-ENDLIST`` until FFmpeg ends it.
    """
    return [out.path for out in spec.outputs
            if out.path is not None and out.staged(spec.is_live)]


def settle_outputs(spec: JobSpec, stage: str, *, succeeded: bool) -> list[str]:
    """Move each staged output into place (success) or remove it; safe to repeat.

    Returns the outputs published now. A crash at any point leaves either the staged file
    (settled again at the next call) or the published one, never a torn name.
    """
    published = []
    for final in staged_outputs(spec):
        staged = Path(staging_path(final, stage))
        if not succeeded:
            staged.unlink(missing_ok=True)
        elif staged.exists():
            staged.replace(final)
            fsync_dir(staged.parent)
            published.append(final)
    return published


def output_dirs(spec: JobSpec) -> list[str]:
    """Directories that must exist before FFmpeg starts (it does not create them)."""
    dirs: list[str] = []
    for out in spec.outputs:
        if out.path is not None:
            parent = str(PurePosixPath(out.path).parent)
            if parent not in dirs:
                dirs.append(parent)
    return dirs
