"""Shell completion for ``estilo``, written from the argparse parser itself.

``estilo completion bash`` and ``estilo completion zsh`` print a script that knows every command,
flag and choice the parser knows, so completion cannot fall behind the options, and needs no
third-party package. Values without choices: bash leaves them to its own filename completion;
zsh offers files for positional arguments and for flags whose metavar names a PATH or DIR, and
shows the metavar (N, PX...) for the rest.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .core.config import FIELDS


@dataclass(frozen=True)
class Command:
    """One command (``()`` is ``estilo`` itself) and what may follow it."""

    path: tuple[str, ...]
    options: list[argparse.Action]  # flags, each with its option strings
    positionals: list[argparse.Action]
    subcommands: dict[str, str]  # name: help line


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[Command]:
    """Every command, depth first, ``estilo`` itself first."""
    actions = [a for a in parser._actions if not isinstance(a, argparse._SubParsersAction)]
    found: dict[str, argparse.ArgumentParser] = {}
    helps: dict[str, str] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found = dict(action.choices)
            helps = {choice.dest: _summary(choice) for choice in action._choices_actions}
    yield Command(
        path,
        [action for action in actions if action.option_strings],
        [action for action in actions if not action.option_strings],
        {name: helps.get(name, "") for name in found},
    )
    for name, sub in found.items():
        yield from _commands(sub, (*path, name))


def _takes_value(action: argparse.Action) -> bool:
    """Whether a flag takes a value (store_true, --no-X, --help and --version take none)."""
    return action.nargs != 0


def _choices(action: argparse.Action) -> tuple[str, ...]:
    """The values an argument takes: argparse's choices, or its config field's (those are
    checked by the registry rather than argparse, for a message that suggests a name)."""
    if action.choices is not None:
        return tuple(map(str, action.choices))
    field = FIELDS.get(action.dest)
    return tuple(field.metadata.get("choices", ())) if field is not None else ()


def _summary(action: argparse.Action) -> str:
    """The help text up to its first parenthesis: a line for a completion menu."""
    return (action.help or "").split(" (")[0].replace("%%", "%")


def bash(parser: argparse.ArgumentParser) -> str:
    """A bash script, for ``eval "$(estilo completion bash)"``."""
    cases: list[tuple[list[str], list[str]]] = []
    for command in _commands(parser):
        key = " ".join(command.path)
        values = [action for action in command.options if _takes_value(action)]
        for kind, words in (
            ("commands", list(command.subcommands)),
            ("flags", [flag for action in command.options for flag in action.option_strings]),
            ("values", [flag for action in values for flag in action.option_strings]),
            ("arguments", [word for action in command.positionals for word in _choices(action)]),
        ):
            if words:
                cases.append(([f"{key}|{kind}"], words))
        cases += [
            ([f"{key}|{flag}" for flag in action.option_strings], list(_choices(action)))
            for action in values
            if _choices(action)
        ]
    table = "".join(
        "        "
        + "|".join(f'"{pattern}"' for pattern in patterns)
        + f") echo '{' '.join(words)}' ;;\n"
        for patterns, words in cases
    )
    return f"""# bash completion for estilo, written by 'estilo completion bash'.
# Load it with: eval "$(estilo completion bash)"

# What may follow "COMMAND|KIND": its subcommands, flags, flags that take a value, choices of a
# positional argument (KIND: commands, flags, values, arguments) or a flag's choices (KIND: --X).
_estilo_words() {{
    case "$1" in
{table}    esac
}}

_estilo() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}} cmd="" words i
    for ((i = 1; i < COMP_CWORD; i++)); do
        if [[ " $(_estilo_words "$cmd|commands") " == *" ${{COMP_WORDS[i]}} "* ]]; then
            cmd=${{cmd:+$cmd }}${{COMP_WORDS[i]}}
        fi
    done
    words=$(_estilo_words "$cmd|$prev")
    if [[ -z $words ]]; then
        # A flag that takes a file or a number: bash's own completion (-o default) does it.
        [[ " $(_estilo_words "$cmd|values") " == *" $prev "* ]] && return
        if [[ $cur == -* ]]; then
            words=$(_estilo_words "$cmd|flags")
        else
            words="$(_estilo_words "$cmd|commands") $(_estilo_words "$cmd|arguments")"
        fi
    fi
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}

complete -o bashdefault -o default -F _estilo estilo
"""


def _quoted(text: str) -> str:
    """``text`` as one zsh word in single quotes."""
    return "'" + text.replace("'", "'\\''") + "'"


def _escaped(text: str, special: str) -> str:
    """``text`` with a backslash before each backslash and each character of ``special``."""
    return "".join("\\" + char if char in special + "\\" else char for char in text)


def _zsh_value(action: argparse.Action) -> str:
    """``:MESSAGE:ACTION`` for an argument's value: its choices, files, or the message alone."""
    message = str(action.metavar or action.dest)
    if _choices(action):
        offer = "(" + " ".join(_choices(action)) + ")"
    elif message == "DIR":
        offer = "_files -/"
    elif not action.option_strings or "PATH" in message:
        offer = "_files"
    else:
        offer = "( )"  # a number or a name: zsh shows the message, offers nothing
    return ":" + _escaped(message, ":") + ":" + offer


def _zsh_spec(action: argparse.Action) -> str:
    """The ``_arguments`` spec of a flag or a positional argument."""
    if not action.option_strings:
        return _quoted(("*" if action.nargs in ("+", "*") else "") + _zsh_value(action))
    spec = "[" + _escaped(_summary(action), "[]") + "]"
    spec += _zsh_value(action) if _takes_value(action) else ""
    flags = action.option_strings
    if isinstance(action, argparse._HelpAction | argparse._VersionAction):
        exclusive = "(- *)"  # nothing else makes sense beside --help
    else:
        exclusive = f"({' '.join(flags)})" if len(flags) > 1 else ""
    names = flags[0] if len(flags) == 1 else "{" + ",".join(flags) + "}"
    return (_quoted(exclusive) if exclusive else "") + names + _quoted(spec)


def _zsh_function(command: Command) -> str:
    """``_estilo_PATH()``: _arguments for the command, then a menu of its subcommands and a
    hand-over to the chosen one's function."""
    name = "_" + "_".join(("estilo", *command.path)).replace("-", "_")
    specs = [_zsh_spec(action) for action in (*command.options, *command.positionals)]
    if not command.subcommands:
        return (
            f"{name}() {{\n    _arguments -s -S \\\n        "
            + " \\\n        ".join(specs)
            + "\n}\n"
        )
    menu = " ".join(
        _quoted(_escaped(sub, ":") + ":" + text) for sub, text in command.subcommands.items()
    )
    cases = "".join(
        f"                {sub}) {name}_{sub.replace('-', '_')} ;;\n" for sub in command.subcommands
    )
    specs += ["': :->command'", "'*:: :->argument'"]
    return (
        f"{name}() {{\n"
        "    local curcontext=$curcontext state line\n"
        "    _arguments -C \\\n        " + " \\\n        ".join(specs) + "\n"
        "    case $state in\n"
        f"        command) local -a commands=({menu})\n"
        "            _describe command commands ;;\n"
        "        argument)\n"
        "            case $words[1] in\n"
        f"{cases}"
        "            esac ;;\n"
        "    esac\n"
        "}\n"
    )


def zsh(parser: argparse.ArgumentParser) -> str:
    """A zsh script: save it as ``_estilo`` in a folder on ``$fpath``, or ``eval`` it."""
    functions = "\n".join(_zsh_function(command) for command in _commands(parser))
    return f"""#compdef estilo
# zsh completion for estilo, written by 'estilo completion zsh'. Save it as _estilo in a folder
# on $fpath before compinit runs, or load it after compinit: eval "$(estilo completion zsh)"

{functions}
if [[ $funcstack[1] == _estilo ]]; then
    _estilo "$@"  # autoloaded from $fpath
else
    compdef _estilo estilo  # evaluated
fi
"""


SCRIPTS: dict[str, Callable[[argparse.ArgumentParser], str]] = {"bash": bash, "zsh": zsh}
