/*
 * sdnotify.h - telling the service manager about the daemon's state.
 */
#ifndef HITCOUNTD_SDNOTIFY_H
#define HITCOUNTD_SDNOTIFY_H

#include "log.h"

/*
 * Send the state formatted from fmt ("READY=1", "STATUS=...", lines
 * separated by newlines) to the socket NOTIFY_SOCKET names, as
 * sd_notify(3) does.  Does nothing without NOTIFY_SOCKET; a failure is
 * logged, never returned: the daemon serves the same either way.
 */
void sdnotify_send(const char *fmt, ...) LOG_PRINTF(1, 2);

#endif
