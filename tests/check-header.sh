#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Build check of the public header include/ev-value.h (and of
# include/ev-value-ipc.h, which includes it): it compiles alone and
# included twice with -Wall -Wextra -Wpedantic -Werror as C99, as C11 and
# (when $CXX works) as C++11, where every function the version script
# exports must be declared with C linkage; it defines no macro outside
# EV_VALUE_* and leaves the peer libraries' names (ev_watcher, ev_ref,
# event_base, io_uring, sd_event, GMainLoop...) undeclared; and next to
# <liburing.h>, <systemd/sd-event.h>, <ev.h>, <event2/event.h> and <glib.h>
# (tests/header-peers.c), included first or last, as C and as C++, it adds
# no diagnostic to those the peers give alone, and libev's struct ev_watcher
# and our ev_value_watcher work side by side.  Peers that are not installed
# are skipped with a message.  <glib.h> lives outside the default include
# path: GLIB_CFLAGS, when set, or else `pkg-config --cflags glib-2.0`, finds
# it, and without either that one peer is skipped.
#
# The io_uring helpers' header include/ev-value-uring.h gets the same
# treatment where <liburing.h> is installed (skipped with a message where
# not): alone and twice with -Werror as GNU C11 and as C++11, and as C11
# with _POSIX_C_SOURCE, since <liburing.h> needs POSIX declarations that
# strict ISO modes hide and our header includes <errno.h> before it; it
# defines no macro outside EV_VALUE_*; and next to the same peers, first or
# last, as C and as C++, it adds no diagnostic.  LIBURING_CFLAGS, when set,
# or else `pkg-config --cflags liburing`, finds a liburing outside the
# default include path.
#
# Run by `make check` with top_srcdir, CC, CXX, NM, CPPFLAGS, CFLAGS,
# CXXFLAGS in the environment.

: "${top_srcdir:=.}" "${CC:=cc}" "${NM:=nm}" "${CXX=}" "${CPPFLAGS=}" "${CFLAGS=}" "${CXXFLAGS=}"

header=$top_srcdir/include/ev-value.h
uring_header=$top_srcdir/include/ev-value-uring.h
peers_src=$top_srcdir/tests/header-peers.c
map=$top_srcdir/lib/libevvalue.sym
etcd_map=$top_srcdir/lib/etcd/libevvalue-etcd.sym
for f in "$header" "$uring_header" "$peers_src" "$map"; do
        if [ ! -f "$f" ]; then
                echo "check-header: $f not found" >&2
                exit 1
        fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-header.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

failed=0
skipped=
warn='-Wall -Wextra -Wpedantic'
# Warnings a public header must not trigger in its users' builds.
warn_more='-Wundef -Wshadow -Wredundant-decls'
inc="-I$top_srcdir/include"
cflags=$CFLAGS
cxxflags=$CXXFLAGS

pass() { echo "PASS: $*"; }
bad() { echo "FAIL: $*"; failed=1; }
skip() { echo "SKIP: $*"; skipped="$skipped
  $*"; }

# Print the diagnostics of a failed compile, indented.
show() { sed 's/^/    /' "$1"; }

# Compile as language $1 (c or c++) with the remaining arguments; the
# compiler's output goes to $tmp/out.  Our -I comes before $CPPFLAGS so an
# installed ev-value.h cannot shadow the one under test.
compile() {
        lang=$1
        shift
        if [ "$lang" = c ]; then
                # shellcheck disable=SC2086
                $CC $inc $CPPFLAGS $cflags "$@" >"$tmp/out" 2>&1
        else
                # shellcheck disable=SC2086
                $CXX $inc $CPPFLAGS $cxxflags "$@" >"$tmp/out" 2>&1
        fi
}

# ------------------------------------------------------------ alone
# The core header, and the backend headers <ev-value-ipc.h> and
# <ev-value-etcd.h> that include it.
for h in ev-value ev-value-ipc ev-value-etcd; do
        printf '#include <%s.h>\n' $h >"$tmp/$h-alone.c"
        printf '#include <%s.h>\n#include <%s.h>\n' $h $h >"$tmp/$h-twice.c"
        cp "$tmp/$h-alone.c" "$tmp/$h-alone.cc"
        cp "$tmp/$h-twice.c" "$tmp/$h-twice.cc"
done

for h in ev-value ev-value-ipc ev-value-etcd; do
        for std in c99 c11; do
                for tu in alone twice; do
                        # shellcheck disable=SC2086
                        if compile c -x c -std=$std $warn $warn_more -Wstrict-prototypes -Werror \
                                -c "$tmp/$h-$tu.c" -o "$tmp/$tu.o"; then
                                pass "$h.h $tu as C ($std)"
                        else
                                bad "$h.h $tu as C ($std):"
                                show "$tmp/out"
                        fi
                done
        done
done

have_cxx=no
if [ -z "$CXX" ]; then
        skip "C++ checks: CXX is not set"
else
        printf 'int main() { return 0; }\n' >"$tmp/probe.cc"
        # shellcheck disable=SC2086
        if $CXX $CXXFLAGS -x c++ -std=c++11 -c "$tmp/probe.cc" -o "$tmp/probe.o" >"$tmp/out" 2>&1; then
                have_cxx=yes
        else
                skip "C++ checks: '$CXX -std=c++11' does not compile a trivial program"
        fi
fi

if [ $have_cxx = yes ]; then
        for h in ev-value ev-value-ipc ev-value-etcd; do
                for tu in alone twice; do
                        # shellcheck disable=SC2086
                        if compile c++ -x c++ -std=c++11 $warn $warn_more -Werror \
                                -c "$tmp/$h-$tu.cc" -o "$tmp/$tu.o"; then
                                pass "$h.h $tu as C++ (c++11)"
                        else
                                bad "$h.h $tu as C++ (c++11):"
                                show "$tmp/out"
                        fi
                done
        done

        # Each exported function, referenced from C++: the header must
        # declare it, and with C linkage (an unmangled undefined symbol).
        # (Not the ev__ names of the map's private node: no header has them.)
        sed -n 's/^[[:space:]]*\(ev_[A-Za-z0-9_]*\)[[:space:]]*;.*/\1/p' "$map" "$etcd_map" |
                grep -v '^ev__' | sort -u >"$tmp/exported"
        {
                printf '#include <ev-value-ipc.h>\n#include <ev-value-etcd.h>\ntypedef void (*any_fn)(void);\n'
                printf 'extern any_fn const header_linkage[];\n'
                printf 'any_fn const header_linkage[] = {\n'
                sed 's/.*/        reinterpret_cast<any_fn>(\&&),/' "$tmp/exported"
                printf '};\n'
        } >"$tmp/linkage.cc"
        # shellcheck disable=SC2086
        if ! compile c++ -x c++ -std=c++11 $warn -Werror -c "$tmp/linkage.cc" -o "$tmp/linkage.o"; then
                bad "C++ reference to every symbol of lib/libevvalue.sym:"
                show "$tmp/out"
        elif ! $NM -u "$tmp/linkage.o" >"$tmp/nm.out" 2>"$tmp/out"; then
                bad "$NM -u on the C++ object:"
                show "$tmp/out"
        else
                awk '{ print $NF }' "$tmp/nm.out" | sort -u >"$tmp/undefined"
                missing=$(comm -23 "$tmp/exported" "$tmp/undefined")
                if [ -z "$missing" ]; then
                        pass "all $(wc -l <"$tmp/exported" | tr -d ' ') exported functions declared with C linkage"
                else
                        bad "exported functions not referenced with C linkage from C++:" $missing
                        grep -i ' U _Z' "$tmp/nm.out" | sed 's/^/    /'
                fi
        fi
fi

# ------------------------------------------------------------ macros
# Every macro the header itself defines is EV_VALUE_*: a bare EV_* belongs
# to libev and libevent.
# shellcheck disable=SC2086
cat "$tmp/ev-value-ipc-alone.c" "$tmp/ev-value-etcd-alone.c" >"$tmp/backends.c"
if compile c -x c -std=c11 -E -dD "$tmp/backends.c" -o "$tmp/dd.i"; then
        awk '/^# [0-9]+ "/ { file = $3; next }
             file ~ /ev-value(-ipc|-etcd)?\.h"$/ && $1 == "#define" { print $2 }' "$tmp/dd.i" |
                sed 's/(.*//' | grep -v '^EV_VALUE_' >"$tmp/bad-macros"
        if [ -s "$tmp/bad-macros" ]; then
                bad "ev-value.h defines macros outside EV_VALUE_*: $(tr '\n' ' ' <"$tmp/bad-macros")"
        else
                pass "ev-value.h defines only EV_VALUE_* macros"
        fi
else
        bad "preprocessing ev-value.h:"
        show "$tmp/out"
fi

# ------------------------------------------------------------ names
# The peers' file-scope names stay free after our header: any declaration
# of one of them there (a typedef ev_watcher, a function ev_ref...) would
# make these definitions an error.
{
        printf '#include <ev-value-ipc.h>\n'
        for name in \
                ev_watcher ev_watcher_list ev_watcher_time ev_io ev_timer ev_periodic \
                ev_signal ev_child ev_stat ev_idle ev_prepare ev_check ev_fork ev_cleanup \
                ev_embed ev_async ev_loop ev_tstamp ev_ref ev_unref ev_now ev_run ev_break \
                ev_time ev_sleep ev_default_loop ev_loop_new ev_loop_destroy ev_feed_event \
                ev_invoke ev_once ev_suspend ev_resume ev_verify ev_depth ev_backend \
                ev_userdata ev_set_userdata ev_version_major ev_version_minor \
                event event_base event_new event_free event_add event_del evutil_socket_t \
                io_uring io_uring_sqe io_uring_cqe io_uring_queue_init \
                sd_event sd_event_source sd_event_new sd_event_ref sd_event_unref \
                GMainLoop GMainContext GSource GIOCondition gboolean gpointer \
                g_main_loop_new g_main_loop_run g_source_remove g_unix_fd_add; do
                printf 'int %s;\n' "$name"
        done
} >"$tmp/names.c"
# shellcheck disable=SC2086
if compile c -x c -std=c11 $warn -Werror -c "$tmp/names.c" -o "$tmp/names.o"; then
        pass "libev's, libevent's, liburing's, sd-event's and GLib's names are free after ev-value.h"
else
        bad "ev-value.h declares a name that belongs to a peer library:"
        show "$tmp/out"
fi
if grep -n -E '(struct|union|enum)[[:space:]]+(ev_(watcher|io|loop|timer|signal|async)|event|event_base|io_uring|sd_event)([^A-Za-z0-9_]|$)' \
        "$header" >"$tmp/tags"; then
        bad "ev-value.h uses a peer library's struct tag:"
        show "$tmp/tags"
else
        pass "ev-value.h uses no peer library's struct tag"
fi

# ------------------------------------------------------------ ev-value-uring.h alone
# Only GNU C (or a feature macro) and C++: in strict ISO C, <liburing.h>
# compiles only as the first header, and ours includes <errno.h> first.
if [ -z "${LIBURING_CFLAGS+set}" ]; then
        LIBURING_CFLAGS=$(${PKG_CONFIG:-pkg-config} --cflags liburing 2>/dev/null) || LIBURING_CFLAGS=
fi
have_uring=no
printf '#include <liburing.h>\n' >"$tmp/liburing.c"
# shellcheck disable=SC2086
if compile c -x c -std=gnu11 $LIBURING_CFLAGS -c "$tmp/liburing.c" -o "$tmp/liburing.o"; then
        have_uring=yes
elif grep -q 'No such file\|file not found' "$tmp/out"; then
        skip "ev-value-uring.h: <liburing.h> is not installed"
else
        skip "ev-value-uring.h: <liburing.h> does not compile alone as C (gnu11): $(grep -m1 -i error "$tmp/out")"
fi

if [ $have_uring = yes ]; then
        printf '#include <ev-value-uring.h>\n' >"$tmp/uring-alone.c"
        printf '#include <ev-value-uring.h>\n#include <ev-value-uring.h>\n' >"$tmp/uring-twice.c"
        cp "$tmp/uring-alone.c" "$tmp/uring-alone.cc"
        cp "$tmp/uring-twice.c" "$tmp/uring-twice.cc"
        for tu in alone twice; do
                for std in gnu11 c11:-D_POSIX_C_SOURCE=200809L; do
                        defs=
                        case $std in *:*) defs=${std#*:} std=${std%%:*} ;; esac
                        # shellcheck disable=SC2086
                        if compile c -x c -std=$std $defs $LIBURING_CFLAGS $warn $warn_more \
                                -Wstrict-prototypes -Werror -c "$tmp/uring-$tu.c" -o "$tmp/uring-$tu.o"; then
                                pass "ev-value-uring.h $tu as C ($std${defs:+ $defs})"
                        else
                                bad "ev-value-uring.h $tu as C ($std${defs:+ $defs}):"
                                show "$tmp/out"
                        fi
                done
                if [ $have_cxx = yes ]; then
                        # shellcheck disable=SC2086
                        if compile c++ -x c++ -std=c++11 $LIBURING_CFLAGS $warn $warn_more -Werror \
                                -c "$tmp/uring-$tu.cc" -o "$tmp/uring-$tu.o"; then
                                pass "ev-value-uring.h $tu as C++ (c++11)"
                        else
                                bad "ev-value-uring.h $tu as C++ (c++11):"
                                show "$tmp/out"
                        fi
                fi
        done

        # shellcheck disable=SC2086
        if compile c -x c -std=gnu11 $LIBURING_CFLAGS -E -dD "$tmp/uring-alone.c" -o "$tmp/uring-dd.i"; then
                awk '/^# [0-9]+ "/ { file = $3; next }
                     file ~ /ev-value-uring\.h"$/ && $1 == "#define" { print $2 }' "$tmp/uring-dd.i" |
                        sed 's/(.*//' | grep -v '^EV_VALUE_' >"$tmp/bad-macros"
                if [ -s "$tmp/bad-macros" ]; then
                        bad "ev-value-uring.h defines macros outside EV_VALUE_*: $(tr '\n' ' ' <"$tmp/bad-macros")"
                else
                        pass "ev-value-uring.h defines only EV_VALUE_* macros"
                fi
        else
                bad "preprocessing ev-value-uring.h:"
                show "$tmp/out"
        fi
fi

# ------------------------------------------------------------ peers
# A -Werror in the user's flags (CI builds with one) would turn a peer's
# own warning into a skip; here warnings are compared, not fatal.
strip_werror() {
        for flag in $1; do
                case $flag in
                -Werror | -Werror=*) ;;
                *) printf '%s ' "$flag" ;;
                esac
        done
}
cflags=$(strip_werror "$CFLAGS")
cxxflags=$(strip_werror "$CXXFLAGS")
peers='LIBURING:liburing.h SD_EVENT:systemd/sd-event.h LIBEV:ev.h LIBEVENT:event2/event.h'

# <glib.h> is under an include directory of its own (/usr/include/glib-2.0
# and an arch-specific one for glibconfig.h).  Its -I flags go into every
# peer build, as the io_uring pass does with LIBURING_CFLAGS: they only add
# search paths, so the other peers compile as before.
# An empty GLIB_CFLAGS (configure found no GLib) never finds it either.
if [ -z "${GLIB_CFLAGS-}" ]; then
        GLIB_CFLAGS=$(${PKG_CONFIG:-pkg-config} --cflags glib-2.0 2>/dev/null) || GLIB_CFLAGS=
fi
if [ -n "$GLIB_CFLAGS" ]; then
        peers="$peers GLIB:glib.h"
        cflags="$cflags $GLIB_CFLAGS"
        cxxflags="$cxxflags $GLIB_CFLAGS"
else
        skip "<glib.h>: no GLIB_CFLAGS, and 'pkg-config --cflags glib-2.0' fails (pkg-config or GLib's -dev package missing)"
fi

# Compile header-peers.c as $1 with the -D macros in $2; the diagnostics go
# to $tmp/diag.  The standards are GNU C11 and C++11: in strict ISO C modes
# liburing.h only compiles when included before every other header.
# The translation unit is $peers_tu, header-peers.c unless the io_uring
# pass below wraps it.
peers_tu=$peers_src
peers_compile() {
        lang=$1
        defs=$2
        if [ "$lang" = c ]; then
                # shellcheck disable=SC2086
                compile c -x c -std=gnu11 $warn $warn_more -Wstrict-prototypes $defs \
                        -c "$peers_tu" -o "$tmp/peers.o"
        else
                # shellcheck disable=SC2086
                compile c++ -x c++ -std=c++11 $warn $warn_more $defs \
                        -c "$peers_tu" -o "$tmp/peers.o"
        fi
        rc=$?
        mv "$tmp/out" "$tmp/diag"
        return $rc
}

# Compare $peers_tu built with $2 alone against $2 plus our header ($ours,
# included where the macros ${ours_macro}_FIRST and _LAST say), first and
# last (and with $3 added, e.g. -DHEADER_PEERS_USE), as $1.
ours=ev-value.h
ours_macro=HEADER_PEERS_OURS
peers_compare() {
        lang=$1
        defs=$2
        extra=$3
        what=$4
        peers_compile "$lang" "$defs"
        cp "$tmp/diag" "$tmp/baseline"
        for pos in first:FIRST last:LAST; do
                if ! peers_compile "$lang" "$defs -D${ours_macro}_${pos#*:} $extra"; then
                        bad "$what, $ours ${pos%:*}, as $lang: does not compile"
                        show "$tmp/diag"
                elif ! cmp -s "$tmp/baseline" "$tmp/diag"; then
                        bad "$what, $ours ${pos%:*}, as $lang: new diagnostics"
                        diff "$tmp/baseline" "$tmp/diag" | sed 's/^/    /'
                else
                        pass "$what, $ours ${pos%:*}, as $lang: no new diagnostic"
                fi
        done
}

# Each usable peer header alone, then all of them together, next to $ours
# as language $1; $2 words the skips ("" or " next to ev-value-uring.h").
# Sets $usable to the -D macros of the usable peers.
check_peers() {
        lang=$1
        where=$2
        usable=
        usable_names=
        for peer in $peers; do
                macro=${peer%%:*}
                name=${peer#*:}
                if peers_compile "$lang" "-DHEADER_PEERS_$macro"; then
                        usable="$usable -DHEADER_PEERS_$macro"
                        usable_names="$usable_names <$name>"
                        peers_compare "$lang" "-DHEADER_PEERS_$macro" "" "<$name>"
                elif grep -q 'No such file\|file not found' "$tmp/diag"; then
                        skip "<$name>$where as $lang: not installed"
                else
                        skip "<$name>$where as $lang: does not compile alone: $(grep -m1 -i error "$tmp/diag")"
                fi
        done
        case $usable in
        '')
                skip "peer headers$where as $lang: none of <liburing.h>, <systemd/sd-event.h>, <ev.h>, <event2/event.h>, <glib.h> usable"
                ;;
        *' '*' '*)
                if peers_compile "$lang" "$usable"; then
                        peers_compare "$lang" "$usable" "" "together with$usable_names"
                else
                        skip "peers together$where as $lang: they do not compile together without $ours:
$(sed 's/^/    /' "$tmp/diag")"
                fi
                ;;
        esac
}

langs=c
[ $have_cxx = yes ] && langs='c c++'
for lang in $langs; do
        check_peers "$lang" ""
        case $usable in
        *-DHEADER_PEERS_LIBEV\ *|*-DHEADER_PEERS_LIBEV)
                peers_compare "$lang" "-DHEADER_PEERS_LIBEV" "-DHEADER_PEERS_USE" \
                        "libev's struct ev_watcher used next to ev_value_watcher"
                ;;
        *)
                skip "name collision with libev's struct ev_watcher as $lang: <ev.h> not usable"
                ;;
        esac
done

# ------------------------------------------------------------ ev-value-uring.h and peers
# header-peers.c wrapped between two optional includes of our io_uring
# header; the -D macros only select lines, as in header-peers.c, so the
# diagnostics of two builds compare line for line.
if [ $have_uring = yes ]; then
        peers_tu=$tmp/uring-peers.c
        ours=ev-value-uring.h
        ours_macro=HEADER_PEERS_URING
        {
                printf '#ifdef HEADER_PEERS_URING_FIRST\n#include <ev-value-uring.h>\n#endif\n'
                printf '#include "%s"\n' "$(cd "$(dirname "$peers_src")" && pwd)/$(basename "$peers_src")"
                printf '#ifdef HEADER_PEERS_URING_LAST\n#include <ev-value-uring.h>\n#endif\n'
        } >"$peers_tu"
        cflags="$cflags $LIBURING_CFLAGS"
        cxxflags="$cxxflags $LIBURING_CFLAGS"
        for lang in $langs; do
                check_peers "$lang" " next to ev-value-uring.h"
        done
fi

if [ -n "$skipped" ]; then
        echo "check-header: skipped:$skipped"
fi
if [ $failed -ne 0 ]; then
        echo "check-header: FAILED"
        exit 1
fi
echo "check-header: passed"
exit 0
