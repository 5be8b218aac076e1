/* SPDX-License-Identifier: MIT */
/*
 * Input of tests/check-typed.sh, never linked: uses of the functions that
 * EV_VALUE_DEFINE_TYPED(point, struct point) generates.  Without any
 * TYPED_WRONG_* macro every use is right and the file must compile without
 * a diagnostic, as C and as C++; each TYPED_WRONG_* macro adds one use with
 * a pointer to the wrong type, which must not compile: the typed functions
 * exist so that such a mistake is an error, where the untyped calls take
 * any pointer with any size.  The comment that names the macro marks the
 * line the error must be reported at.
 */
#include <ev-value.h>

struct point {
        int x;
        int y;
};

/* The same layout, another type. */
struct not_a_point {
        int x;
        int y;
};

EV_VALUE_DEFINE_TYPED(point, struct point);

int typed_uses(ev_value *v, ev_value_watcher *w);

int typed_uses(ev_value *v, ev_value_watcher *w) {
        struct point p = { 1, 2 };
        int r = 0;

        r |= point_set(v, &p);
        r |= point_set_if_changed(v, &p);
        r |= point_peek(v, &p);
        r |= point_get(w, &p);
        r |= point_wait(w, 0, -1, &p);
#ifdef TYPED_WRONG_SET
        {
                int an_int = 0;

                r |= point_set(v, &an_int); /* TYPED_WRONG_SET */
        }
#endif
#ifdef TYPED_WRONG_SET_IF_CHANGED
        {
                const struct not_a_point other = { 1, 2 };

                r |= point_set_if_changed(v, &other); /* TYPED_WRONG_SET_IF_CHANGED */
        }
#endif
#ifdef TYPED_WRONG_PEEK
        {
                long wrong = 0;

                r |= point_peek(v, &wrong); /* TYPED_WRONG_PEEK */
        }
#endif
#ifdef TYPED_WRONG_GET
        {
                struct not_a_point other;

                r |= point_get(w, &other); /* TYPED_WRONG_GET */
        }
#endif
#ifdef TYPED_WRONG_WAIT
        {
                double wrong;

                r |= point_wait(w, 0, -1, &wrong); /* TYPED_WRONG_WAIT */
        }
#endif
        return r;
}
