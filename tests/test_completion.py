"""Shell completion: the scripts `estilo completion bash|zsh` print, run by the real shells."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from estilo import cli
from estilo.completion import SCRIPTS
from estilo.core.registry import OPTIMIZERS


def script(shell: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(["completion", shell]) == 0
    return capsys.readouterr().out


def stylize_flags() -> set[str]:
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    stylize = commands.choices["stylize"]  # type: ignore[index]
    return {flag for action in stylize._actions for flag in action.option_strings}


BASH_CASES = [
    (
        "estilo ",
        {"stylize", "demo", "video", "info", "evaluate", "train", "apply", "export"}
        | {"experiment", "serve", "completion"},
    ),
    ("estilo train --wi", {"--width"}),
    ("estilo st", {"stylize"}),
    ("estilo stylize --optim", {"--optimizer", "--optimiser"}),
    ("estilo stylize a.jpg b.jpg --optimiser ", set(OPTIMIZERS)),
    ("estilo stylize --preserve-colours l", {"luminance"}),
    ("estilo experiment ", {"run", "paper", "report"}),
    ("estilo experiment paper --executor ", {"local", "ray"}),
    ("estilo completion ", {"bash", "zsh"}),
    ("estilo video --temp", {"--temporal-weight"}),
    ("estilo stylize --size ", set()),  # a number: left to bash's filename completion
]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_commands_flags_and_choices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "estilo.bash"
    path.write_text(script("bash", capsys))
    probe = textwrap.dedent(
        f"""
        source {path}
        COMP_WORDS=($1 "$2"); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); _estilo
        printf '%s\\n' "${{COMPREPLY[@]}}"
        """
    )
    long_flags = {flag for flag in stylize_flags() if flag.startswith("--")}
    for line, expected in [*BASH_CASES, ("estilo stylize --", long_flags)]:
        words, _, current = line.rpartition(" ")
        done = subprocess.run(["bash", "-c", probe, "probe", words, current],
                              capture_output=True, text=True, check=True)  # fmt: skip
        assert set(done.stdout.split()) == expected, (line, done.stdout, done.stderr)


# Types a line into an interactive zsh with the script on $fpath and presses Tab; compadd is
# wrapped to print every candidate. (The markers are split so that zsh's echo of this very
# input cannot match them.)
ZSH_HARNESS = """
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PS1=''; fpath=($1 \\$fpath); autoload -U compinit; compinit -u -D"
zpty -w z 'compadd () { builtin compadd -O __c "$@"; local c; for c in $__c; do print -r -- "<""<$c>"">"; done; builtin compadd "$@" }'
zpty -w z 'bindkey "^I" complete-word; finish() { zle -I; print -r -- "<""<END>"">" }; zle -N finish; bindkey "^X" finish'
zpty -n -w z "$2"$'\\t'
zpty -n -w z $'\\C-x'
while zpty -r z line; do
  [[ $line == *'<<END>>'* ]] && break
  [[ $line == *'<<'*'>>'* ]] && print -r -- "${${line#*<<}%%>>*}"
done
zpty -d z
"""  # noqa: E501


@pytest.mark.skipif(shutil.which("zsh") is None, reason="needs zsh")
def test_zsh_completes_commands_flags_and_choices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "_estilo").write_text(script("zsh", capsys))
    assert subprocess.run(["zsh", "-n", str(tmp_path / "_estilo")]).returncode == 0
    for line, expected in BASH_CASES[:-1]:
        done = subprocess.run(["zsh", "-f", "-c", ZSH_HARNESS, "zsh", str(tmp_path), line],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert set(done.stdout.split()) == expected, (line, done.stdout, done.stderr)


def test_both_scripts_name_every_flag_of_stylize(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert set(SCRIPTS) == {"bash", "zsh"}
    for shell in SCRIPTS:
        text = script(shell, capsys)
        assert all(flag in text for flag in stylize_flags()), shell
