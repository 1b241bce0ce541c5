"""``kawa completion bash|zsh|fish``: print the shell's completion script. The script
asks ``kawa __complete SHELL …`` (:mod:`kawa.cli.completer`) what fits at the cursor."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from kawa.cli.completer import SHELLS

BASH = r"""# kawa completion for bash: eval "$(kawa completion bash)"
_kawa_complete() {
    local IFS=$'\n'
    COMPREPLY=($(kawa __complete bash "${COMP_LINE:0:COMP_POINT}" 2>/dev/null))
}
complete -o default -F _kawa_complete kawa
"""
ZSH = r"""#compdef kawa
# kawa completion for zsh: source <(kawa completion zsh)   (after compinit)
_kawa() {
    local -a found
    found=("${(@f)$(kawa __complete zsh "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    found=(${found:#})
    if (( ${#found} )); then
        compadd -- "${found[@]}"
    else
        _files
    fi
}
compdef _kawa kawa
"""
FISH = r"""# kawa completion for fish: kawa completion fish | source
function __kawa_complete
    kawa __complete fish (commandline -opc)[2..-1] (commandline -ct) 2>/dev/null
end
complete -c kawa -f -a '(__kawa_complete)'
"""


def _check_shell(value: str) -> str:
    if value not in SHELLS:
        raise typer.BadParameter(f"{value!r}: use one of {', '.join(SHELLS)}")
    return value


def completion(
    shell: Annotated[
        str, typer.Argument(help="bash, zsh or fish.", callback=_check_shell, metavar="SHELL")
    ],
) -> None:
    """Print the shell completion script (bash: eval "$(kawa completion bash)")."""
    sys.stdout.write({"bash": BASH, "zsh": ZSH, "fish": FISH}[shell])
