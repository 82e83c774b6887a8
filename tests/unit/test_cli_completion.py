"""``ffrtmp completion``: the script is generated from the parser, and a real bash and a real
zsh complete from it (each registers it; its function offers subcommands, options and choices)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ffrtmp.cli.completion import tree
from ffrtmp.cli.main import build_parser
from ffrtmp.contract import Queue
from tests.processes import clean_env


def generate(shell: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "ffrtmp", "completion", shell], env=clean_env(),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and proc.stderr == "", proc
    return proc.stdout


def bash(script: Path, body: str) -> str:
    proc = subprocess.run(["bash", "--norc", "--noprofile", "-c", f"source {script}\n{body}"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc
    return proc.stdout


def complete(script: Path, *words: str) -> list[str]:
    array = " ".join(f"'{w}'" for w in words)
    return bash(script, f"COMP_WORDS=({array}); COMP_CWORD={len(words) - 1}; _ffrtmp\n"
                        'printf "%s\\n" "${COMPREPLY[@]}"').split()


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("completion") / "ffrtmp.bash"
    path.write_text(generate("bash"))
    return path


def test_bash_registers_the_completion(script: Path) -> None:
    assert bash(script, "complete -p ffrtmp").strip() == "complete -o default -F _ffrtmp ffrtmp"


def test_bash_completes_commands_actions_options_and_choices(script: Path) -> None:
    top = set(complete(script, "ffrtmp", ""))
    assert {"jobs", "nodes", "masters", "completion", "master", "agent", "--help"} <= top
    assert complete(script, "ffrtmp", "jo") == ["jobs"]
    assert set(complete(script, "ffrtmp", "--debug", "jobs", "")) >= {"submit", "list", "show", "watch"}
    assert "--strict" in complete(script, "ffrtmp", "jobs", "submit", "--s")
    assert complete(script, "ffrtmp", "jobs", "submit", "--queue", "") == [q.value for q in Queue]
    assert set(complete(script, "ffrtmp", "completion", "")) == {"-h", "--help", "bash", "zsh"}


def test_the_table_is_the_parser() -> None:
    """A flag added to the parser appears in the script with no edit to the completion code."""
    parser = build_parser()
    paths = dict(tree(parser))
    submit = parser._subparsers._group_actions[0].choices["jobs"]  # type: ignore[union-attr]
    submit = submit._subparsers._group_actions[0].choices["submit"]  # type: ignore[union-attr]
    options = {o for a in submit._actions for o in a.option_strings}
    assert set(paths["ffrtmp jobs submit"]) == options
    assert "[ 'ffrtmp jobs submit' ]" not in generate("bash")


def zsh(script: Path, body: str) -> str:
    """A real zsh with its completion system (compinit) and the generated script loaded."""
    setup = f"autoload -U compinit; compinit -u -D; source {script}"
    proc = subprocess.run(["zsh", "-f", "-c", f"{setup}\n{body}"], capture_output=True, text=True,
                          timeout=30, check=False)
    assert proc.returncode == 0 and proc.stderr == "", proc
    return proc.stdout


def zsh_complete(script: Path, *words: str) -> list[str]:
    """What ``_ffrtmp`` offers for ``words`` (the last one being completed). ``compadd`` works
    only inside a completion widget, which needs a terminal; here a function of that name
    stands in for the builtin and prints what it was given."""
    array = " ".join(f"'{w}'" for w in words)
    return zsh(script, "compadd() { shift; print -rl -- $@ }; _files() { :; }\n"
                       f"words=({array}); CURRENT={len(words)}; _ffrtmp").split()


@pytest.fixture(scope="module")
def zsh_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    text = generate("zsh")
    assert text.startswith("#compdef ffrtmp\n")
    path = tmp_path_factory.mktemp("completion") / "_ffrtmp"
    path.write_text(text)
    return path


def test_zsh_registers_the_completion(zsh_script: Path) -> None:
    assert zsh(zsh_script, "print -r -- $_comps[ffrtmp]").strip() == "_ffrtmp"


def test_zsh_completes_commands_actions_options_and_choices(zsh_script: Path) -> None:
    assert {"jobs", "nodes", "masters", "--help"} <= set(zsh_complete(zsh_script, "ffrtmp", ""))
    assert {"submit", "list", "watch"} <= set(zsh_complete(zsh_script, "ffrtmp", "--debug", "jobs", ""))
    assert "--strict" in zsh_complete(zsh_script, "ffrtmp", "jobs", "submit", "--s")
    assert zsh_complete(zsh_script, "ffrtmp", "jobs", "submit", "--queue", "") == [q.value for q in Queue]
