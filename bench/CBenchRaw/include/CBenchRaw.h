#ifndef CBENCHRAW_H
#define CBENCHRAW_H

/// The baseline QMP client of the benchmarks: a blocking unix socket, write(),
/// read() to the newline. Connects, reads the greeting, negotiates capabilities.
/// Returns the fd or -1.
int cbench_qmp_connect(const char *path);

/// Sends `command` (a complete JSON object followed by \r\n) and reads until the
/// reply line; skips event lines. Returns 0 on success, -1 on error.
int cbench_qmp_roundtrip(int fd, const char *command);

/// Runs query-status round trips for `seconds`; stores per-call latencies in
/// nanoseconds into `latencies` (up to `capacity`). With `with_id`, each command
/// carries a unique "id" exactly as a client that matches replies by id must send
/// it; without, the bare command. Returns the number of calls.
long cbench_qmp_rounds(int fd, int with_id, double seconds, long long *latencies, long capacity);

/// Sends query-status and returns 1 when the VM is running, 0 when not, -1 on error.
int cbench_qmp_is_running(int fd);

/// The raw observation client: connects to all `n` QMP sockets at once and, on one
/// thread with poll(2), negotiates capabilities and asks `query-status` on each.
/// Returns how many completed.
int cbench_query_all(const char *const *paths, int n);

/// Monotonic clock in nanoseconds.
long long cbench_now_ns(void);

#endif
