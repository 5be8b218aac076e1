#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Documentation check: every public function has a man page and every man
# page is where a user looks for it.  The names are the global symbols of
# the version scripts (lib/libevvalue.sym, lib/etcd/libevvalue-etcd.sym;
# not the ev__ names of the private node), the static inline functions and the function-like
# EV_VALUE_DEFINE_* macros of the public headers; each must be named by an
# .Nm line of a page in man/.  Each page in man/ must be cited as
# name(section) in README.md, whose Documentation section lists them.
# Run by `make check` with top_srcdir in the environment; exit 0 pass,
# 1 fail, printing what is missing.

: "${top_srcdir:=.}"

failed=0
missing() { echo "FAIL: $*"; failed=1; }

names=$(
        sed -n 's/^[[:space:]]*\([a-z_][a-z0-9_]*\);$/\1/p' "$top_srcdir/lib/libevvalue.sym" \
                "$top_srcdir/lib/etcd/libevvalue-etcd.sym" | grep -v '^ev__'
        sed -n 's/^static inline [^(]*[ *]\([a-z_][a-z0-9_]*\)(.*/\1/p' "$top_srcdir"/include/*.h
        sed -n 's/^#define \(EV_VALUE_DEFINE_[A-Z_]*\)(.*/\1/p' "$top_srcdir"/include/*.h
)
if [ -z "$names" ]; then
        echo "check-docs: no public name found in lib/libevvalue.sym and include/" >&2
        exit 1
fi
for name in $names; do
        if ! grep -q -E "^\\.Nm $name( ,)?\$" "$top_srcdir"/man/*.[37]; then
                missing "$name has no man page (no '.Nm $name' in man/)"
        fi
done

for page in "$top_srcdir"/man/*.[137]; do
        base=${page##*/}
        cited="${base%.*}(${base##*.})"
        if ! grep -q -F "$cited" "$top_srcdir/README.md"; then
                missing "README.md does not cite $cited"
        fi
done

if [ $failed -ne 0 ]; then
        echo "check-docs: FAILED"
        exit 1
fi
echo "check-docs: $(echo "$names" | wc -l) public names documented, $(ls "$top_srcdir"/man/*.[137] | wc -l) pages cited by README.md"
exit 0
