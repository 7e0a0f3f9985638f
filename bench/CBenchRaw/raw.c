#define _GNU_SOURCE
#include "CBenchRaw.h"

#include <stdio.h>
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

static char buf[65536];
static size_t have = 0;

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
