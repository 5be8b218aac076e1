/* SPDX-License-Identifier: MIT */
/*
 * The evvalue command: what its files share.  Each command is a file
 * (serve.c, set.c, get.c, watch.c, wait.c) with an entry point of the
 * shape of main(); address.c parses the address forms, source.c opens a
 * watcher or makes a set whatever the address's backend (etcd.c for etcd
 * addresses), output.c prints a snapshot.  Everything is built on the
 * library's public API, as a user of the library would build it.
 */
#ifndef EVVALUE_H
#define EVVALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ev-value.h"

/* Exit statuses, documented in evvalue(1). */
enum {
        EXIT_ERROR = 1,
        EXIT_USAGE = 2,
        EXIT_CLOSED = 3,
        EXIT_TIMEOUT = 4,
        EXIT_LOST = 5,
};

/* --------------------------------------------------------------- address.c */
enum address_kind { ADDRESS_UNIX, ADDRESS_ETCD };

struct address {
        const char *text;       /* as the user wrote it, for messages */
        enum address_kind kind;
        char *path;             /* unix: the socket path, "@name" for abstract */
        char *endpoints;        /* etcd: "http://host:port,..." */
        char *key;              /* etcd: the decoded key */
};

/* Parse text into *ret; -EINVAL for an address of no known form. */
int address_parse(const char *text, struct address *ret);
void address_clear(struct address *a);

/* ---------------------------------------------------------------- source.c */
/* A watcher of the value an address names, and what keeps it alive. */
struct source {
        const struct address *address;
        ev_value_watcher *watcher;
        void *etcd;             /* the ev_value_etcd object, for etcd */
};

int source_open(const struct address *a, unsigned watch_flags, struct source *ret);
void source_close(struct source *src);
/* Whether a snapshot of this source is an etcd key's absence. */
bool source_is_absent(const struct source *src, const ev_value_snapshot *s);
/* Wait for the newest unseen snapshot until deadline_ms (-1: none). */
int source_next(struct source *src, int64_t deadline_ms, ev_value_snapshot **ret);
/* Set the value the address names: 1 set, 0 skipped (EV_VALUE_SET_IF_CHANGED). */
int source_set(const struct address *a, const void *data, size_t size, unsigned flags,
               int timeout_ms);
int source_delete(const struct address *a, int timeout_ms);

/* ------------------------------------------------------------------ etcd.c */
/* The same for etcd addresses; -EPROTONOSUPPORT in a build without
 * libevvalue-etcd, -ELIBACC when it cannot be loaded. */
int etcd_watch(const struct address *a, unsigned flags, void **ret_handle,
               ev_value_watcher **ret_watcher);
/* Free the handle of etcd_watch(); NULL is accepted; returns NULL. */
void *etcd_close(void *handle);
int etcd_set(const struct address *a, const void *data, size_t size, unsigned flags,
             int timeout_ms);
int etcd_delete(const struct address *a, int timeout_ms);

/* ---------------------------------------------------------------- output.c */
enum output_mode { OUTPUT_FORMAT, OUTPUT_JSON };

struct output {
        enum output_mode mode;
        const char *format;     /* OUTPUT_FORMAT */
        bool with_absent;       /* OUTPUT_JSON: add "absent" (etcd) */
};

/* The output of --json or --format (or default_format): 0, or EXIT_USAGE
 * after a message when they conflict or the format is bad. */
int output_setup(bool json, const char *format, const char *default_format,
                 const struct address *a, struct output *ret);
/* Print s to stdout and flush it: 0 or a negative errno. */
int output_snapshot(const struct output *o, const ev_value_snapshot *s, bool absent);

/* --------------------------------------------------------------- evvalue.c */
extern const char *command_name;        /* "evvalue get", for messages */

/* One line on stderr, "evvalue get: ADDR: strerror(-error)"; returns the
 * exit status for the error. */
int fail(const char *address, int error);
/* One line on stderr about the command line; returns EXIT_USAGE. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Option arguments: 0, or EXIT_USAGE after a message. */
int parse_timeout(const char *text, int *ret_ms);
int parse_count(const char *text, uint64_t *ret);
/* The message for getopt_long()'s '?' or ':' (optstring starts with ':'); EXIT_USAGE. */
int option_error(int c, char **argv);
/* The operands left after the options: EXIT_USAGE unless there are
 * between min and max of them; their parsed address in *ret. */
int operands(int argc, char **argv, int min, int max, struct address *ret);
/* The deadline of a --timeout, on now_ms()'s clock; -1 for none. */
int64_t deadline_after(int timeout_ms);
/* The milliseconds left until deadline_ms, for a timeout_ms argument (-1: none). */
int time_left(int64_t deadline_ms);
int64_t now_ms(void);
/* Every byte of a file (or stdin for "-"), in a malloc'd buffer. */
int read_all(const char *path, void **ret_data, size_t *ret_size);

/* ----------------------------------------------------- the commands' mains */
int cmd_serve(int argc, char **argv);
int cmd_set(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_wait(int argc, char **argv);

#endif
