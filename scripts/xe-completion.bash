# bash completion for hostagent's xe: commands, a command's parameter names, and uuids and
# name labels fetched from the agent. Installed by scripts/install-dom0 as
# /etc/bash_completion.d/xe; by hand: `source scripts/xe-completion.bash`.
#
#   xe vm-<TAB><TAB>                  the commands starting with vm-
#   xe vm-param-get <TAB><TAB>        uuid= param-name= param-key=
#   xe vm-start vm=<TAB><TAB>         the VMs' name labels and uuids
#   xe vm-param-get uuid=<TAB>        the VMs' uuids
#   xe vdi-create sr-uuid=<TAB>       the SRs' uuids
#
# Connection options on the line being completed (-s -p -u -pw -pwf --nossl) are used for the
# look-ups too. Names come from `xe help --all --minimal` and `xe help <command> --minimal`.

_xe_run()
{
    "${_xe_bin:-xe}" "${_xe_conn[@]}" "$@" 2>/dev/null
}

# the class (or view: template, snapshot) a command works on: the longest leading part that has
# a <view>-param-list command
_xe_view()
{
    local cmd="$1" view="$1"
    while [[ "$view" == *-* ]]; do
        view="${view%-*}"
        if [[ ",$_xe_commands," == *",$view-param-list,"* ]]; then
            echo "$view"
            return
        fi
    done
}

# candidate values of parameter $2 of command $1, one a line
_xe_values()
{
    local cmd="$1" param="$2" view
    view=$(_xe_view "$cmd")
    case "$param" in
        uuid)
            [ -n "$view" ] && _xe_run "$view-list" params=uuid --minimal ;;
        vm)
            _xe_run vm-list params=name-label --minimal
            _xe_run vm-list params=uuid --minimal ;;
        template)
            _xe_run template-list params=name-label --minimal ;;
        on|host)
            _xe_run host-list params=name-label --minimal ;;
        name-label)
            [ -n "$view" ] && _xe_run "$view-list" params=name-label --minimal ;;
        *-uuid)
            local target="${param%-uuid}"
            [[ ",$_xe_commands," == *",$target-param-list,"* ]] && _xe_run "$target-list" params=uuid --minimal ;;
        *-uuids)
            local target="${param%-uuids}"
            [[ ",$_xe_commands," == *",$target-param-list,"* ]] && _xe_run "$target-list" params=uuid --minimal ;;
        param-name|params)
            [ -n "$view" ] && _xe_run help "$view-list" --minimal | tr ',' '\n' | grep '=$' | sed 's/=$//' \
                | grep -v '^params$' ;;
        class)
            tr ',' '\n' <<<"$_xe_commands" | sed -n 's/-param-list$//p' ;;
        power-state)
            printf '%s\n' halted running paused suspended ;;
        force|multiple|paused|shared|sharable|read-only)
            printf '%s\n' true false ;;
    esac | tr ',' '\n'
}

_xe()
{
    local cur cword=$COMP_CWORD i word cmd="" param="" value="" prefix=""
    local -a _xe_conn=()
    local _xe_bin="${COMP_WORDS[0]}" _xe_commands
    COMPREPLY=()
    cur="${COMP_WORDS[COMP_CWORD]}"
    # connection options and the command among the words before the cursor
    i=1
    while [ "$i" -lt "$cword" ]; do
        word="${COMP_WORDS[i]}"
        case "$word" in
            -s|-h|-p|-u|-pw|-pwf)
                _xe_conn+=("$word" "${COMP_WORDS[i+1]}")
                i=$((i + 2))
                continue ;;
            --nossl)
                _xe_conn+=("$word") ;;
            -*|=|*=*) ;;
            *)
                if [ -z "$cmd" ] && [ "${COMP_WORDS[i+1]}" != "=" ]; then cmd="$word"; fi ;;
        esac
        i=$((i + 1))
    done
    case "${COMP_WORDS[cword-1]}" in
        -s|-h|-p|-u|-pw) return 0 ;;
        -pwf) COMPREPLY=($(compgen -f -- "$cur")); return 0 ;;
    esac
    _xe_commands=$(_xe_run help --all --minimal)
    if [ -z "$cmd" ]; then
        COMPREPLY=($(compgen -W "${_xe_commands//,/ }" -- "$cur"))
        return 0
    fi
    # name=value, whether or not COMP_WORDBREAKS split the word at '='
    if [ "$cur" = "=" ]; then
        param="${COMP_WORDS[cword-1]}"
    elif [ "$cword" -ge 2 ] && [ "${COMP_WORDS[cword-1]}" = "=" ]; then
        param="${COMP_WORDS[cword-2]}" value="$cur"
    elif [[ "$cur" == *=* ]]; then
        param="${cur%%=*}" value="${cur#*=}" prefix="${cur%%=*}="
    fi
    if [ -n "$param" ]; then
        local IFS=$'\n' candidate
        local -a found=()
        for candidate in $(compgen -W "$(_xe_values "$cmd" "$param")" -- "$value"); do
            found+=("$prefix$(printf '%q' "$candidate")")
        done
        COMPREPLY=("${found[@]}")
        return 0
    fi
    local names
    names=$(_xe_run help "$cmd" --minimal)
    COMPREPLY=($(compgen -W "${names//,/ }" -- "$cur"))
    if [ "${#COMPREPLY[@]}" -eq 1 ] && [[ "${COMPREPLY[0]}" == *= ]]; then
        compopt -o nospace 2>/dev/null
    fi
    return 0
}

complete -F _xe xe
