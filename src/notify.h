/* systemd's readiness protocol (sd_notify(3)) without libsystemd: one
 * datagram of "KEY=value" lines to the AF_UNIX socket named by
 * $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace). */
#ifndef GH_NOTIFY_H
#define GH_NOTIFY_H

/* Sends state ("READY=1", "STOPPING=1", "STATUS=...", several lines joined
 * by '\n') as one datagram. Returns 0 when sent or when $NOTIFY_SOCKET is
 * unset or empty (not run by systemd), -1 when it names an unusable address
 * or the send fails (errno says why). Thread-safe; does not unset the
 * variable, so every later call goes to the same socket. */
int gh_notify(const char *state);

/* Sends "RELOADING=1\nMONOTONIC_USEC=<now>" (systemd 253 and later want the
 * timestamp with RELOADING=1); READY=1 then tells systemd the reload ended.
 * Returns as gh_notify does. */
int gh_notify_reloading(void);

#endif
