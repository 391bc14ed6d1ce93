/*
 * channel.h - the command channel between the master and one worker.
 */
#ifndef HITCOUNTD_CHANNEL_H
#define HITCOUNTD_CHANNEL_H

/* One byte on the channel; each is a whole message. */
enum channel_msg {
	CHANNEL_READY = 'R',            /* worker -> master: serving */
	CHANNEL_DRAIN = 'D',            /* master -> worker: unready, serve on */
	CHANNEL_STOP = 'S',             /* master -> worker: stop gracefully */
	CHANNEL_HALT = 'H',             /* master -> worker: stop now */
	CHANNEL_REOPEN = 'O'            /* master -> worker: reopen log files */
};

/*
 * Make the channel of a worker about to be forked: fds[0] is the master's
 * end (non-blocking), fds[1] the worker's (blocking until the worker sets
 * it otherwise).  Both are close-on-exec.  Returns 0, or -1 after logging.
 */
int channel_open(int fds[2]);

/*
 * Send one message.  Returns 0, or -1 with errno set (EPIPE: the other end
 * is gone; EAGAIN: its buffer is full, which a peer that reads cannot
 * cause).  Never raises SIGPIPE.
 */
int channel_send(int fd, enum channel_msg msg);

/*
 * Read what has arrived into buf (at most len messages).  Returns the
 * number of messages, 0 at end of file (the other end closed), or -1 with
 * errno set (EAGAIN when nothing is there on a non-blocking end).
 */
int channel_recv(int fd, char *buf, int len);

#endif
