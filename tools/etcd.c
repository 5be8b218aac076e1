/* SPDX-License-Identifier: MIT */
/*
 * etcd addresses, through libevvalue-etcd, which is loaded with dlopen()
 * when an etcd address is first used rather than linked: with libcurl it
 * brings some thirty libraries (TLS, Kerberos, LDAP...) that a unix
 * address never needs, and scripts run evvalue in loops.  Each object runs
 * on the library's own thread (EV_VALUE_ETCD_THREAD), so the commands wait
 * on its watchers as on any other.  A build without libevvalue-etcd leaves
 * EV_VALUE_ETCD_SONAME undefined, and every call here says so.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <string.h>

#include "ev-value-etcd.h"
#include "evvalue.h"

static struct {
        int (*new)(const char *endpoints, const char *key, unsigned flags, ev_value_etcd **ret);
        int (*watch)(ev_value_etcd *e, unsigned flags, ev_value_watcher **ret);
        int (*put_flags)(ev_value_etcd *e, const void *data, size_t size, unsigned flags,
                         int timeout_ms);
        int (*delete)(ev_value_etcd *e, int timeout_ms);
        ev_value_etcd *(*free)(ev_value_etcd *e);
} api;

#ifdef EV_VALUE_ETCD_SONAME
/* dlsym() into a function pointer, through memcpy() as POSIX allows. */
static bool bind(void *library, const char *name, void *ret_function) {
        void *symbol = dlsym(library, name);

        memcpy(ret_function, &symbol, sizeof(symbol));
        return symbol != NULL;
}
#endif

static int load(void) {
#ifdef EV_VALUE_ETCD_SONAME
        void *library;

        if (api.free)
                return 0;
        library = dlopen(EV_VALUE_ETCD_SONAME, RTLD_NOW | RTLD_LOCAL);
        if (!library)
                return -ELIBACC;
        if (!bind(library, "ev_value_etcd_new", &api.new) ||
            !bind(library, "ev_value_etcd_watch", &api.watch) ||
            !bind(library, "ev_value_etcd_put_flags", &api.put_flags) ||
            !bind(library, "ev_value_etcd_delete", &api.delete) ||
            !bind(library, "ev_value_etcd_free", &api.free)) {
                memset(&api, 0, sizeof(api));
                dlclose(library);
                return -ELIBBAD;
        }
        return 0;
#else
        return -EPROTONOSUPPORT;
#endif
}

static int open_key(const struct address *a, ev_value_etcd **ret) {
        int r = load();

        return r < 0 ? r : api.new(a->endpoints, a->key, EV_VALUE_ETCD_THREAD, ret);
}

int etcd_watch(const struct address *a, unsigned flags, void **ret_handle,
               ev_value_watcher **ret_watcher) {
        ev_value_etcd *e;
        int r = open_key(a, &e);

        if (r < 0)
                return r;
        r = api.watch(e, flags, ret_watcher);
        if (r < 0) {
                api.free(e);
                return r;
        }
        *ret_handle = e;
        return 0;
}

void *etcd_close(void *handle) {
        if (handle)
                api.free(handle);
        return NULL;
}

/* With --if-changed, etcd compares and puts in one transaction. */
int etcd_set(const struct address *a, const void *data, size_t size, unsigned flags,
             int timeout_ms) {
        ev_value_etcd *e;
        int r = open_key(a, &e);

        if (r < 0)
                return r;
        r = api.put_flags(e, data, size, flags, timeout_ms);
        api.free(e);
        return r;
}

int etcd_delete(const struct address *a, int timeout_ms) {
        ev_value_etcd *e;
        int r = open_key(a, &e);

        if (r < 0)
                return r;
        r = api.delete(e, timeout_ms);
        api.free(e);
        return r;
}
