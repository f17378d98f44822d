//! Shell completion (SPEC §4): command names, and the live names operators
//! type: release names, deploy labels and configured endpoint labels.
//!
//! `c2 completions bash` prints a script that asks `c2 __complete <kind>`
//! for the names, so they are always current (zsh: enable `bashcompinit`).

use anyhow::Result;

use crate::store::ReleaseStore;
use crate::target::Target;

/// The names of one kind, one per line; empty when they cannot be had.
pub(crate) fn names(
    target: &dyn Target,
    store: &dyn ReleaseStore,
    kind: &str,
) -> Result<Vec<String>> {
    Ok(match kind {
        "releases" => store.list()?,
        "endpoints" => target.endpoints(),
        "deploys" => target.deploy_labels()?,
        _ => Vec::new(),
    })
}

/// The bash completion script.
pub(crate) fn bash_script(commands: &[String]) -> String {
    format!(
        r#"# bash completion for c2: eval "$(c2 completions bash)"
_c2_names() {{
  local config=()
  local i
  for ((i = 1; i < ${{#COMP_WORDS[@]}}; i++)); do
    if [[ ${{COMP_WORDS[i]}} == --config ]]; then config=(--config "${{COMP_WORDS[i+1]}}"); fi
  done
  "${{COMP_WORDS[0]}}" "${{config[@]}}" __complete "$1" 2>/dev/null
}}
_c2() {{
  local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}}
  if [[ $prev == --config ]]; then COMPREPLY=($(compgen -f -- "$cur")); return; fi
  # The positional words so far, without --config and its value.
  local pos=() skip=0 w
  for ((w = 1; w < COMP_CWORD; w++)); do
    if ((skip)); then skip=0; continue; fi
    if [[ ${{COMP_WORDS[w]}} == --config ]]; then skip=1; continue; fi
    [[ ${{COMP_WORDS[w]}} == -* ]] && continue
    pos+=("${{COMP_WORDS[w]}}")
  done
  if ((${{#pos[@]}} == 0)); then
    COMPREPLY=($(compgen -W "{commands}" -- "$cur")); return
  fi
  local kind=
  case "${{pos[0]}}:${{#pos[@]}}" in
    start:1|unpack:1) kind=releases ;;
    stop:1) kind=deploys ;;
    connect:1|disconnect:1) kind=endpoints ;;
    connect:2) kind=deploys ;;
  esac
  if [[ -n $kind ]]; then COMPREPLY=($(compgen -W "$(_c2_names $kind)" -- "$cur")); fi
}}
complete -F _c2 c2
"#,
        commands = commands.join(" ")
    )
}
