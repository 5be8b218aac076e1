/* SPDX-License-Identifier: MIT */
/*
 * A circular, intrusive, doubly linked list.  A value keeps its watchers on
 * two of these so that a set visits only the watchers that need a signal and
 * moves all of them to the other list in constant time.
 */
#ifndef EV_VALUE_LIST_H
#define EV_VALUE_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct ev__list {
        struct ev__list *next, *prev;
};

#define ev__container_of(ptr, type, member) \
        ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

static inline void ev__list_init(struct ev__list *head) {
        head->next = head->prev = head;
}

static inline bool ev__list_empty(const struct ev__list *head) {
        return head->next == head;
}

static inline void ev__list_add(struct ev__list *head, struct ev__list *node) {
        node->next = head->next;
        node->prev = head;
        head->next->prev = node;
        head->next = node;
}

static inline void ev__list_del(struct ev__list *node) {
        node->prev->next = node->next;
        node->next->prev = node->prev;
        node->next = node->prev = node;
}

/* Move every node of from to the front of to, leaving from empty. */
static inline void ev__list_splice(struct ev__list *from, struct ev__list *to) {
        if (ev__list_empty(from))
                return;
        from->prev->next = to->next;
        to->next->prev = from->prev;
        from->next->prev = to;
        to->next = from->next;
        ev__list_init(from);
}

#endif
