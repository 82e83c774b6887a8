"""``ffrtmp completion bash|zsh``: a shell completion script generated from the parser itself.

The script holds a table: for each command path (``"ffrtmp"``, ``"ffrtmp jobs"``,
``"ffrtmp jobs submit"``) the words that may follow (subcommands and options), and for each
option with choices (``"ffrtmp jobs submit --queue"``) its values. It is read from the
argparse parser at run time, so a new command or flag completes without anyone editing a script.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ffrtmp.cli.context import Env

if TYPE_CHECKING:  # generic only in typeshed: argparse's own class takes no subscript
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]

SHELLS = ("bash", "zsh")


def tree(parser: argparse.ArgumentParser, path: str = "ffrtmp") -> Iterator[tuple[str, list[str]]]:
    """(path, words) for the parser and every subcommand under it, options' choices included."""
    words: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                words.append(name)
                yield from tree(sub, f"{path} {name}")
        elif action.option_strings:
            words += action.option_strings
            if action.choices:
                for option in action.option_strings:
                    yield f"{path} {option}", [str(c) for c in action.choices]
        elif action.choices:  # a positional with choices: ``completion bash|zsh``
            words += [str(c) for c in action.choices]
    yield path, words


def _quoted(word: str) -> str:
    return "'" + word.replace("'", "'\\''") + "'"


def _table(parser: argparse.ArgumentParser, name: str, declare: str) -> str:
    rows = "".join(f"  [{_quoted(path)}]={_quoted(' '.join(words))}\n" for path, words in tree(parser))
    return f"{declare} {name}\n{name}=(\n{rows})\n"


BASH = r"""
_ffrtmp() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} p=ffrtmp w i
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=${COMP_WORDS[i]}
    [[ $w == -* ]] && continue
    [[ -n ${_ffrtmp_tree["$p $w"]+set} ]] && p="$p $w"
  done
  if [[ $prev == -* && -n ${_ffrtmp_tree["$p $prev"]+set} ]]; then
    p="$p $prev"
  fi
  COMPREPLY=($(compgen -W "${_ffrtmp_tree[$p]}" -- "$cur"))
}
complete -o default -F _ffrtmp ffrtmp
"""

ZSH = r"""
_ffrtmp() {
  local p=ffrtmp w
  for w in ${words[2,CURRENT-1]}; do
    [[ $w == -* ]] && continue
    (( ${+_ffrtmp_tree[$p $w]} )) && p="$p $w"
  done
  w=${words[CURRENT-1]}
  if [[ $w == -* ]] && (( ${+_ffrtmp_tree[$p $w]} )); then
    p="$p $w"
  fi
  compadd -- ${=_ffrtmp_tree[$p]}
  _files
}
compdef _ffrtmp ffrtmp
"""


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    if shell == "zsh":
        return "#compdef ffrtmp\n" + _table(parser, "_ffrtmp_tree", "typeset -gA") + ZSH
    return "# ffrtmp completion for bash\n" + _table(parser, "_ffrtmp_tree", "declare -gA") + BASH


def add_parser(sub: SubParsers, root: argparse.ArgumentParser) -> None:
    p = sub.add_parser("completion", help="print a shell completion script (bash or zsh)",
                       description="print a completion script: eval \"$(ffrtmp completion bash)\", or "
                       "ffrtmp completion bash > /etc/bash_completion.d/ffrtmp")
    p.add_argument("shell", choices=SHELLS)
    p.set_defaults(handler=completion, root_parser=root)


def completion(args: argparse.Namespace, env: Env) -> int:
    env.stdout.write(script(args.root_parser, args.shell))
    return 0
