#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The bash completion tools/evvalue.bash-completion: it parses (bash -n),
# and _evvalue, called with COMP_WORDS, COMP_CWORD, COMP_LINE and
# COMP_POINT set as bash sets them (the line cut at blanks and around the
# other characters of COMP_WORDBREAKS, so that unix:/x is three words),
# offers the commands, the options of the command at hand and no other,
# file names and the unix: and etcd:// prefixes where an address goes,
# file names after --initial-file, and nothing after an option that takes
# a free value.  The cases run in `bash --norc` without bash-completion,
# and again with it when it is installed (Debian package bash-completion),
# since the completion uses its _init_completion then.  Run by `make check`
# with top_srcdir in the environment; exit 0 pass, 1 fail, 77 skip.

: "${top_srcdir:=.}"

if ! command -v bash >/dev/null 2>&1; then
        echo "check-completion: SKIP: bash is not installed"
        exit 77
fi
file=$top_srcdir/tools/evvalue.bash-completion
if [ ! -f "$file" ]; then
        echo "check-completion: FAIL: $file not found"
        exit 1
fi
if ! bash -n "$file"; then
        echo "check-completion: FAIL: bash -n $file"
        exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-completion.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
mkdir "$tmp/sub" && : >"$tmp/s.sock" && : >"$tmp/state" || exit 1

# $1: the completion file, $2: a directory holding s.sock, state and sub/,
# $3: a bash-completion script to load first, or empty.
# A bash program: bash expands it, not sh.
# shellcheck disable=SC2016
cases='
if [ -n "$3" ]; then
        . "$3" || exit 1
        if ! declare -F _init_completion >/dev/null; then
                echo "FAIL: $3 defines no _init_completion"
                exit 1
        fi
fi
. "$1" || exit 1
d=$2
cd "$d" || exit 1      # where no name starts with u or e, for the prefixes
COMP_WORDBREAKS=$'"'"' \t\n"\x27@><=;|&(:'"'"'
failed=0

# Cuts LINE into COMP_WORDS as bash does: at blanks, and around each run
# of the other characters of COMP_WORDBREAKS; the last word is the one
# completed, empty after a blank.
split_line() {
        local line=$1 w= c i brk=${COMP_WORDBREAKS//[[:space:]]/} cb wb
        COMP_WORDS=()
        for ((i = 0; i < ${#line}; i++)); do
                c=${line:i:1}
                cb=0 wb=0
                [[ $c == ["$brk"] ]] && cb=1
                [[ ${w:0:1} == ["$brk"] ]] && wb=1
                if [[ $c == [[:space:]] ]]; then
                        [[ $w ]] && COMP_WORDS+=("$w")
                        w=
                elif [[ $w && $cb != "$wb" ]]; then
                        COMP_WORDS+=("$w")
                        w=$c
                else
                        w+=$c
                fi
        done
        COMP_WORDS+=("$w")
        COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
        COMP_LINE=$line
        COMP_POINT=${#line}
}

# t LINE WANT: completing at the end of LINE offers exactly WANT, a
# sorted, space-separated list.
t() {
        local got
        split_line "$1"
        COMPREPLY=()
        _evvalue evvalue "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
        got=$(printf "%s\n" "${COMPREPLY[@]}" | LC_ALL=C sort | tr "\n" " ")
        got=${got% }
        if [[ $got != "$2" ]]; then
                echo "FAIL: \"$1\": got \"$got\", want \"$2\""
                failed=1
        fi
}

# has LINE WORD: completing at the end of LINE offers WORD (has) or does
# not (hasnt).
has() {
        split_line "$1"
        COMPREPLY=()
        _evvalue evvalue "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
        local c
        for c in "${COMPREPLY[@]}"; do
                [[ $c == "$2" ]] && return 0
        done
        return 1
}
hasnt() {
        ! has "$@"
}
check() {
        if ! "$@"; then
                echo "FAIL: $*"
                failed=1
        fi
}

t "evvalue " "get help serve set wait watch"
t "evvalue wa" "wait watch"
t "evvalue -" "--help --version"
t "evvalue help w" "wait watch"
t "evvalue help watch " ""
t "evvalue watch --c" "--count"
t "evvalue watch x --skip" "--skip-current"
t "evvalue set x --" "--delete --help --if-changed --timeout"
t "evvalue wait x --" "--equals --format --help --json --match --timeout"
check has "evvalue serve --" --allow-set
check hasnt "evvalue serve --" --json
check hasnt "evvalue get x --" --exec
t "evvalue get x --timeout " ""
t "evvalue get --timeout " ""
t "evvalue wait --match " ""
t "evvalue serve --initial " ""
t "evvalue watch -e " ""
t "evvalue get x -t " ""
t "evvalue watch x --count " ""
t "evvalue watch x --format " ""
t "evvalue watch x --exec " ""
t "evvalue wait x --equals " ""
t "evvalue wait x --match " ""
t "evvalue serve x --initial " ""
t "evvalue watch x --count=" ""
t "evvalue set x " ""
t "evvalue set x -- -" ""

# Addresses: files, the two prefixes, and in unix:PATH the files of PATH;
# what bash replaces starts after the last ":" of the word.
t "evvalue get $d/" "$d/s.sock $d/state $d/sub/"
t "evvalue get $d/s" "$d/s.sock $d/state $d/sub/"
t "evvalue get $d/su" "$d/sub/"
t "evvalue get unix:$d/s." "$d/s.sock"
t "evvalue get u" "unix:"
t "evvalue get et" "etcd://"
t "evvalue get etcd:" "//"
t "evvalue get etcd://h" ""
t "evvalue get @n" ""
t "evvalue wait --match x unix:$d/s." "$d/s.sock"
t "evvalue watch --timeout 5 -s unix:$d/s." "$d/s.sock"
check has "evvalue get " unix:
check has "evvalue get " etcd://
check has "evvalue set --timeout 5 " unix:
check has "evvalue serve " unix:
t "evvalue serve --initial-file $d/st" "$d/state"
t "evvalue serve -F $d/st" "$d/state"
t "evvalue serve --initial-file=$d/st" "$d/state"

exit $failed
'

status=0
bash --norc --noprofile -c "$cases" check-completion "$file" "$tmp" "" || status=1
bc=/usr/share/bash-completion/bash_completion
if [ -f "$bc" ]; then
        bash --norc --noprofile -c "$cases" check-completion "$file" "$tmp" "$bc" || {
                echo "check-completion: the failures above are with $bc loaded"
                status=1
        }
        with="with and without bash-completion"
else
        with="without bash-completion (not installed: $bc)"
fi
if [ $status -ne 0 ]; then
        echo "check-completion: FAILED"
        exit 1
fi
echo "check-completion: all cases pass, $with"
exit 0
