/* SPDX-License-Identifier: MIT */
/*
 * Input of tests/check-typed.sh, never linked: a file that uses one of the
 * functions EV_VALUE_DEFINE_TYPED generates, as most users' files do.  It
 * must compile without a diagnostic under -Wall -Wextra -Wpedantic -Werror
 * with every compiler the script finds: the functions it does not use must
 * not draw -Wunused-function (clang warns for unused static inline
 * functions defined in the main file, which is where the macro expands).
 */
#include <ev-value.h>

struct counter {
        unsigned long long n;
};

EV_VALUE_DEFINE_TYPED(counter, struct counter);

int publish(ev_value *v, unsigned long long n);

int publish(ev_value *v, unsigned long long n) {
        const struct counter c = { n };

        return counter_set(v, &c);
}
