#include "notify.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Fills sa from a $NOTIFY_SOCKET value: "/path" or "@abstract". Returns the
 * address length, or 0 when the value is neither or does not fit. */
static socklen_t notify_addr(const char *name, struct sockaddr_un *sa)
{
    size_t len = strlen(name);
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (name[0] == '/') {
        if (len >= sizeof(sa->sun_path)) return 0;
        memcpy(sa->sun_path, name, len + 1);
        return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    }
    if (name[0] == '@' && len > 1 && len <= sizeof(sa->sun_path)) {
        /* Abstract names are counted bytes: no terminator is part of it. */
        memcpy(sa->sun_path + 1, name + 1, len - 1);
        return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    }
    return 0;
}

int gh_notify(const char *state)
{
    const char *name = getenv("NOTIFY_SOCKET");
    if (!name || !name[0]) return 0;
    struct sockaddr_un sa;
    socklen_t salen = notify_addr(name, &sa);
    if (!salen) {
        errno = EINVAL;
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    size_t len = strlen(state);
    ssize_t n = sendto(fd, state, len, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
    int saved = errno;
    close(fd);
    if (n == (ssize_t)len) return 0;
    errno = n < 0 ? saved : EMSGSIZE;
    return -1;
}

int gh_notify_reloading(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts)) return -1;
    uint64_t usec = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    char msg[64];
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%" PRIu64, usec);
    return gh_notify(msg);
}
