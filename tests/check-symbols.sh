#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Build check: the dynamic symbols that the built libevvalue.so defines are
# exactly the global names of the version script lib/libevvalue.sym (and
# libevvalue-etcd.so's those of lib/etcd/libevvalue-etcd.sym, when built), no more
# (a helper that escaped -fvisibility=hidden) and no fewer (a function the
# map promises but nobody marked EV_VALUE_PUBLIC).  The version nodes' own
# absolute symbols are ignored.  Run by `make check` with top_srcdir,
# top_builddir and NM in the environment; on failure prints the difference.

: "${top_srcdir:=.}" "${top_builddir:=.}" "${NM:=nm}"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-symbols.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

# check_map LIB MAP: 0 when they agree, 1 (with the difference) when not.
check_map() {
lib=$1
map=$2

if [ ! -f "$map" ]; then
        echo "check-symbols: $map not found" >&2
        return 1
fi
if [ ! -f "$lib" ]; then
        echo "check-symbols: SKIP: $lib not built (configured with --disable-shared?)"
        return 77
fi

# Names in global: sections, and the version node names (NODE { ... };).
sed -e 's,/\*.*\*/,,g' -e 's/#.*//' "$map" | awk -v nodes="$tmp/nodes" '
        { line = line " " $0 }
        END {
                gsub(/[{}:;]/, " & ", line)
                n = split(line, tok, /[ \t\n]+/)
                global = 0; depth = 0
                for (i = 1; i <= n; i++) {
                        t = tok[i]
                        if (t == "") continue
                        if (t == "{") { depth++; if (prev != "") print prev > nodes; global = 1; prev = ""; continue }
                        if (t == "}") { depth--; global = 0; prev = ""; continue }
                        if (depth == 0) { prev = (t == ";") ? "" : t; continue }
                        if (t == ":") { global = (prev == "global"); prev = ""; continue }
                        if (t == ";") { if (global && prev != "" && prev != "global" && prev != "local") print prev; prev = ""; continue }
                        prev = t
                }
        }' | sort -u >"$tmp/expected"
touch "$tmp/nodes"

if ! $NM -D --defined-only "$lib" >"$tmp/nm.out" 2>"$tmp/nm.err"; then
        echo "check-symbols: $NM -D --defined-only $lib failed:" >&2
        cat "$tmp/nm.err" >&2
        return 1
fi
# "ADDR TYPE NAME[@@NODE]"; drop the version string and the node symbols.
awk '{ name = $NF; sub(/@.*/, "", name); print name }' "$tmp/nm.out" |
        grep -v -x -F -f "$tmp/nodes" | sort -u >"$tmp/actual"

if [ ! -s "$tmp/expected" ]; then
        echo "check-symbols: no global symbol found in $map" >&2
        return 1
fi
if cmp -s "$tmp/expected" "$tmp/actual"; then
        echo "check-symbols: $(wc -l <"$tmp/actual" | tr -d ' ') exported symbols match $map"
        return 0
fi
echo "check-symbols: exported symbols differ from $map"
echo "  '-' in the map but not exported, '+' exported but not in the map:"
comm -23 "$tmp/expected" "$tmp/actual" | sed 's/^/  - /'
comm -13 "$tmp/expected" "$tmp/actual" | sed 's/^/  + /'
return 1
}

check_map "$top_builddir/.libs/libevvalue.so" "$top_srcdir/lib/libevvalue.sym"
r=$?
[ "$r" -eq 1 ] && exit 1
if [ -f "$top_builddir/.libs/libevvalue-etcd.so" ]; then
        check_map "$top_builddir/.libs/libevvalue-etcd.so" "$top_srcdir/lib/etcd/libevvalue-etcd.sym" || exit 1
fi
exit "$r"
