#define _GNU_SOURCE
#include "CBenchRaw.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

long long cbench_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Per thread: bench/scale waits for many QEMUs at once from several threads (a shared
 * buffer let one thread consume another's replies, and a run hung in read). */
static __thread char buf[65536];
static __thread size_t have = 0;

/* Reads one line (up to \n) into the static buffer; returns its length or -1. */
static long read_line(int fd) {
    for (;;) {
        char *nl = memchr(buf, '\n', have);
        if (nl) {
            size_t len = (size_t)(nl - buf) + 1;
            memmove(buf, buf + len, have - len);
            have -= len;
            return (long)len;
        }
        if (have == sizeof(buf)) return -1;
        ssize_t n = read(fd, buf + have, sizeof(buf) - have);
        if (n <= 0) return -1;
        have += (size_t)n;
    }
}

/* Whether the line just consumed was an event: checked by peeking before consuming. */
static int next_line_is_event(int fd) {
    for (;;) {
        char *nl = memchr(buf, '\n', have);
        if (nl) return memmem(buf, (size_t)(nl - buf), "\"event\"", 7) != NULL;
        ssize_t n = read(fd, buf + have, sizeof(buf) - have);
        if (n <= 0) return -1;
        have += (size_t)n;
    }
}

int cbench_qmp_connect(const char *path) {
    struct sockaddr_un addr = {0};
    addr.sun_family = AF_UNIX;
    strncpy(addr.sun_path, path, sizeof(addr.sun_path) - 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) { close(fd); return -1; }
    have = 0;
    if (read_line(fd) < 0) { close(fd); return -1; }  /* greeting */
    if (cbench_qmp_roundtrip(fd, "{\"execute\":\"qmp_capabilities\"}\r\n") < 0) { close(fd); return -1; }
    return fd;
}

int cbench_qmp_is_running(int fd) {
    static const char *cmd = "{\"execute\":\"query-status\"}\r\n";
    size_t len = strlen(cmd);
    if (write(fd, cmd, len) != (ssize_t)len) return -1;
    for (;;) {
        int ev = next_line_is_event(fd);
        if (ev < 0) return -1;
        char *nl = memchr(buf, '\n', have);
        int running = nl && memmem(buf, (size_t)(nl - buf), "\"running\": true", 15) != NULL;
        if (read_line(fd) < 0) return -1;
        if (!ev) return running;
    }
}

int cbench_qmp_roundtrip(int fd, const char *command) {
    size_t len = strlen(command);
    if (write(fd, command, len) != (ssize_t)len) return -1;
    for (;;) {
        int ev = next_line_is_event(fd);
        if (ev < 0) return -1;
        if (read_line(fd) < 0) return -1;
        if (!ev) return 0;
    }
}

long cbench_qmp_rounds(int fd, int with_id, double seconds, long long *latencies, long capacity) {
    char cmd[96];
    long long end = cbench_now_ns() + (long long)(seconds * 1e9);
    long count = 0;
    for (;;) {
        long long t0 = cbench_now_ns();
        if (t0 >= end) break;
        if (with_id)
            snprintf(cmd, sizeof(cmd), "{\"execute\":\"query-status\",\"id\":%ld}\r\n", count + 1);
        else
            snprintf(cmd, sizeof(cmd), "{\"execute\":\"query-status\"}\r\n");
        if (cbench_qmp_roundtrip(fd, cmd) < 0) return -1;
        if (count < capacity) latencies[count] = cbench_now_ns() - t0;
        count++;
    }
    return count;
}

/* The raw observation client: connects to all `n` sockets at once and, on one thread
 * with poll(2), reads each greeting, sends qmp_capabilities, reads the reply, sends
 * query-status and reads its reply: three round trips per socket, all sockets in
 * flight together. Returns how many completed. */
int cbench_query_all(const char *const *paths, int n) {
    enum { GREETING, CAPS, STATUS, DONE, FAILED };
    struct conn { int fd; int state; size_t have; char buf[4096]; };
    struct conn *c = calloc((size_t)n, sizeof *c);
    struct pollfd *p = calloc((size_t)n, sizeof *p);
    if (!c || !p) { free(c); free(p); return 0; }
    int open_count = 0;
    for (int i = 0; i < n; i++) {
        c[i].fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        strncpy(a.sun_path, paths[i], sizeof a.sun_path - 1);
        if (c[i].fd < 0 || connect(c[i].fd, (struct sockaddr *)&a, sizeof a) != 0) { c[i].state = FAILED; continue; }
        c[i].state = GREETING;
        open_count++;
    }
    static const char caps[] = "{\"execute\":\"qmp_capabilities\"}\r\n";
    static const char status[] = "{\"execute\":\"query-status\"}\r\n";
    while (open_count > 0) {
        for (int i = 0; i < n; i++) { p[i].fd = c[i].state < DONE ? c[i].fd : -1; p[i].events = POLLIN; p[i].revents = 0; }
        if (poll(p, (nfds_t)n, 10000) <= 0) break;
        for (int i = 0; i < n; i++) {
            if (!p[i].revents) continue;
            ssize_t r = read(c[i].fd, c[i].buf + c[i].have, sizeof c[i].buf - c[i].have);
            if (r <= 0) { c[i].state = FAILED; open_count--; continue; }
            c[i].have += (size_t)r;
            /* One message per step: QEMU sends nothing unasked before each reply here. */
            if (!memchr(c[i].buf, '\n', c[i].have)) continue;
            c[i].have = 0;
            if (c[i].state == GREETING) { (void)!write(c[i].fd, caps, sizeof caps - 1); c[i].state = CAPS; }
            else if (c[i].state == CAPS) { (void)!write(c[i].fd, status, sizeof status - 1); c[i].state = STATUS; }
            else { c[i].state = DONE; open_count--; }
        }
    }
    int done = 0;
    for (int i = 0; i < n; i++) { if (c[i].state == DONE) done++; if (c[i].fd >= 0) close(c[i].fd); }
    free(c); free(p);
    return done;
}
