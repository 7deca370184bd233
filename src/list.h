/* An intrusive doubly linked list: O(1) insert and remove, no allocation. */
#ifndef GH_LIST_H
#define GH_LIST_H

#include <stddef.h>

typedef struct gh_link_s {
    struct gh_link_s *prev, *next;
} gh_link_t;

#define gh_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static inline void gh_list_init(gh_link_t *head)
{
    head->prev = head->next = head;
}

static inline int gh_list_empty(const gh_link_t *head)
{
    return head->next == head;
}

static inline void gh_list_push(gh_link_t *head, gh_link_t *l)
{
    l->next = head->next;
    l->prev = head;
    head->next->prev = l;
    head->next = l;
}

static inline void gh_list_push_tail(gh_link_t *head, gh_link_t *l)
{
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}

static inline void gh_list_remove(gh_link_t *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = l;
}

#endif
