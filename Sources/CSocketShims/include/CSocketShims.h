#ifndef CSOCKETSHIMS_H
#define CSOCKETSHIMS_H

#include <stddef.h>
#include <sys/types.h>

/// Largest path a unix socket address holds (sun_path, including the NUL).
int csock_unix_path_max(void);

/// Creates a close-on-exec stream unix socket and connects it to `path`.
/// Returns the fd, or -1 with errno set. ENAMETOOLONG when the path does not fit.
int csock_unix_connect(const char *path);

/// As `csock_unix_connect`, but waits at most `micros` microseconds (0: no limit) while
/// the listener's queue is full (its server is stopped or not accepting); then -1 with
/// errno EAGAIN.
int csock_unix_connect_timeout(const char *path, long micros);

/// Creates a close-on-exec unix socket listening on `path` (which must not exist).
/// Returns the fd, or -1 with errno set.
int csock_unix_listen(const char *path, int backlog);

/// Sends `len` bytes with `fd` attached as SCM_RIGHTS ancillary data, without blocking (MSG_DONTWAIT).
/// Returns the number of bytes sent, or -1 with errno set.
ssize_t csock_send_with_fd(int sock, const void *buf, size_t len, int fd);

/// Receives up to `len` bytes; if an fd arrives in SCM_RIGHTS it is stored in *fd_out
/// (close-on-exec), else *fd_out is -1. Returns bytes read or -1 with errno set.
ssize_t csock_recv_with_fd(int sock, void *buf, size_t len, int *fd_out);

/// Reads the peer credentials of a connected unix socket (SO_PEERCRED).
/// Returns 0 and fills pid/uid, or -1 with errno set.
int csock_peer_credentials(int sock, pid_t *pid, uid_t *uid);

/// Sets SO_RCVTIMEO to `micros` microseconds (0 clears). Returns 0 or -1.
int csock_set_receive_timeout(int sock, long micros);

/// eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK).
int csock_eventfd(void);

/// Creates a close-on-exec pipe. Returns 0 or -1 with errno set.
int cproc_pipe(int fds[2]);
/// Whether `needle` occurs in `hay` (memmem, which Glibc's Swift overlay does not export).
int cmem_contains(const void *hay, size_t hay_len, const void *needle, size_t needle_len);

/// renameat2(olddirfd, oldpath, newdirfd, newpath, RENAME_NOREPLACE): fails with EEXIST when
/// anything has the new name, and with EINVAL where the file system does not support it.
/// Returns 0 or -1 with errno set.
int cfs_rename_noreplace(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);

/// Spawns `path` in a new session with default signal handling and an empty signal
/// mask, stdin on `stdin_fd` and stdout on `stdout_fd` (each /dev/null when -1), stderr
/// on `stderr_fd`, and every other descriptor closed. Returns 0 and stores the pid, or
/// an errno value.
int cproc_spawn(const char *path, char *const argv[], char *const envp[], int stdin_fd, int stdout_fd, int stderr_fd,
                pid_t *pid_out);
/// Like cproc_spawn, for a long-lived child: stdout and stderr both go to `log_fd`,
/// the child runs in `/` so it keeps no directory busy, with umask 077 so what it creates
/// (QEMU's sockets) is private; the process's umask is 077 for the moment of the spawn (for
/// a process whose threads create files only with explicit modes).
int cproc_spawn_detached(const char *path, char *const argv[], char *const envp[], int log_fd, pid_t *pid_out);
/// Like cproc_spawn_detached, with a keeper in between: a forked child (a session of its own,
/// signals at their defaults, standard descriptors on /dev/null, every other descriptor closed
/// but `log_fd`) starts the program, waits for it, appends one line to `log_fd`
/// (`qemuctl-keeper: pid=P status=N time=T` or `... signal=N core=0|1 time=T`) and exits with its
/// status (128 + N for signal N). Only a process's parent can learn how it ended; the keeper stays
/// its parent after this process exits. `pid_out` is the program's pid, `keeper_out` the keeper's
/// (this process's child). Returns 0 or an errno (the program could not be executed).
int cproc_spawn_kept(const char *path, char *const argv[], char *const envp[], int log_fd, pid_t *pid_out,
                     pid_t *keeper_out);

#endif
