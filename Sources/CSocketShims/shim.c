#define _GNU_SOURCE
#include "CSocketShims.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <spawn.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <linux/close_range.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

int csock_unix_path_max(void) {
    struct sockaddr_un addr;
    return (int)sizeof(addr.sun_path);
}

static int fill_addr(struct sockaddr_un *addr, const char *path) {
    size_t n = strlen(path);
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    if (n == 0 || n >= sizeof(addr->sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(addr->sun_path, path, n);
    return 0;
}

int csock_unix_connect(const char *path) {
    return csock_unix_connect_timeout(path, 0);
}

int csock_unix_connect_timeout(const char *path, long micros) {
    struct sockaddr_un addr;
    if (fill_addr(&addr, path) < 0) return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    /* A unix stream connect waits while the listener's queue is full (a stopped or
       wedged server) for as long as SO_SNDTIMEO allows, then fails with EAGAIN. */
    struct timeval tv = { .tv_sec = micros / 1000000, .tv_usec = micros % 1000000 };
    if (micros > 0) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int rc;
    do {
        rc = connect(fd, (struct sockaddr *)&addr, sizeof(addr));
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    if (micros > 0) {
        struct timeval zero = { 0, 0 };
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &zero, sizeof(zero));
    }
    return fd;
}

int csock_unix_listen(const char *path, int backlog) {
    struct sockaddr_un addr;
    if (fill_addr(&addr, path) < 0) return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, backlog) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

ssize_t csock_send_with_fd(int sock, const void *buf, size_t len, int fd) {
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof(control));
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof(control.buf);
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    ssize_t n;
    do {
        n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    return n;
}

ssize_t csock_recv_with_fd(int sock, void *buf, size_t len, int *fd_out) {
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    union {
        char buf[CMSG_SPACE(sizeof(int) * 4)];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof(control.buf);
    *fd_out = -1;
    ssize_t n;
    do {
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return n;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            int fds[4];
            memcpy(fds, CMSG_DATA(c), count * sizeof(int));
            for (size_t i = 0; i < count; i++) {
                if (*fd_out < 0) *fd_out = fds[i];
                else close(fds[i]);
            }
        }
    }
    return n;
}

int csock_peer_credentials(int sock, pid_t *pid, uid_t *uid) {
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return -1;
    *pid = cred.pid;
    *uid = cred.uid;
    return 0;
}

int csock_set_receive_timeout(int sock, long micros) {
    struct timeval tv = {.tv_sec = micros / 1000000, .tv_usec = micros % 1000000};
    return setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

int csock_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

int cproc_pipe(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

static int cproc_spawn_with(const char *path, char *const argv[], char *const envp[], int in_fd, int out_fd, int err_fd,
                            const char *cwd, pid_t *pid_out) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
    if (in_fd >= 0) {
        posix_spawn_file_actions_adddup2(&actions, in_fd, 0);
    } else {
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    }
    if (out_fd >= 0) {
        posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
    } else {
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    }
    posix_spawn_file_actions_adddup2(&actions, err_fd, 2);
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    if (cwd) posix_spawn_file_actions_addchdir_np(&actions, cwd);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    int rc = posix_spawn(pid_out, path, &actions, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    return rc;
}

static pthread_mutex_t cproc_umask_lock = PTHREAD_MUTEX_INITIALIZER;

int cproc_spawn_detached(const char *path, char *const argv[], char *const envp[], int log_fd, pid_t *pid_out) {
    // posix_spawn has no umask attribute: the process's is set to 077 for the moment of the
    // spawn, serialised so concurrent spawns restore the right value (for a process whose
    // threads create files only with explicit modes).
    pthread_mutex_lock(&cproc_umask_lock);
    mode_t old_mask = umask(077);
    int rc = cproc_spawn_with(path, argv, envp, -1, log_fd, log_fd, "/", pid_out);
    umask(old_mask);
    pthread_mutex_unlock(&cproc_umask_lock);
    return rc;
}

/// This process's argument strings (contiguous from argv[0]), so a keeper can say what it is in
/// `ps` instead of repeating the qemuctl command that forked it (a `pkill -f 'qemuctl controller'`
/// must not match it). glibc passes argc and argv to constructors.
static char *cproc_args_start = NULL;
static size_t cproc_args_length = 0;

__attribute__((constructor)) static void cproc_capture_arguments(int argc, char **argv, char **envp) {
    (void)envp;
    if (argc <= 0 || argv == NULL || argv[0] == NULL) return;
    char *end = argv[argc - 1] + strlen(argv[argc - 1]);
    cproc_args_start = argv[0];
    cproc_args_length = (size_t)(end - argv[0]);
}

/// Appends the decimal digits of `v` to `buf` at `*n` (async-signal-safe).
static void keeper_append_number(char *buf, size_t *n, unsigned long long v) {
    char digits[24];
    int k = 0;
    do {
        digits[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && k < 24);
    while (k) buf[(*n)++] = digits[--k];
}

static void keeper_append(char *buf, size_t *n, const char *s) {
    while (*s) buf[(*n)++] = *s++;
}

/// The keeper's life after the fork: only async-signal-safe calls (the parent has threads).
static void keeper_main(const char *path, char *const argv[], char *const envp[], int log_fd, int report_fd) {
    setsid();
    prctl(PR_SET_NAME, "qemuctl-keeper", 0, 0, 0);
    // In / like the program: it keeps no directory (a mount point) busy for as long as QEMU runs.
    if (chdir("/") != 0) _exit(127);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++) sigaction(s, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int exec_pipe[2];
    int result[2] = {0, 0};  // pid, errno
    if (pipe2(exec_pipe, O_CLOEXEC) != 0) {
        result[1] = errno;
        (void)!write(report_fd, result, sizeof(result));
        _exit(127);
    }
    pid_t child = fork();
    if (child < 0) {
        result[1] = errno;
        (void)!write(report_fd, result, sizeof(result));
        _exit(127);
    }
    if (child == 0) {
        int null_fd = open("/dev/null", O_RDONLY);
        if (null_fd >= 0) dup2(null_fd, 0);
        dup2(log_fd, 1);
        dup2(log_fd, 2);
        if (chdir("/") != 0) _exit(127);
        // Everything else closes at exec (the exec pipe's end among them, which tells success).
        syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
        execve(path, argv, envp);
        int e = errno;
        (void)!write(exec_pipe[1], &e, sizeof(e));
        _exit(127);
    }
    close(exec_pipe[1]);
    int exec_errno = 0;
    ssize_t got;
    do { got = read(exec_pipe[0], &exec_errno, sizeof(exec_errno)); } while (got < 0 && errno == EINTR);
    close(exec_pipe[0]);
    result[0] = (int)child;
    result[1] = got == (ssize_t)sizeof(exec_errno) ? exec_errno : 0;
    (void)!write(report_fd, result, sizeof(result));
    // Only QEMU's end ends the keeper: the signals a service manager or a terminal sends to a
    // group are QEMU's business (it was forked before these, so it keeps the defaults).
    struct sigaction ign;
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    sigaction(SIGTERM, &ign, NULL);
    sigaction(SIGINT, &ign, NULL);
    sigaction(SIGHUP, &ign, NULL);
    sigaction(SIGQUIT, &ign, NULL);
    sigaction(SIGPIPE, &ign, NULL);
    // `ps` shows `qemuctl-keeper pid=N`, not the command that forked it.
    if (cproc_args_start != NULL && cproc_args_length > 0) {
        char title[64];
        size_t t = 0;
        keeper_append(title, &t, "qemuctl-keeper pid=");
        keeper_append_number(title, &t, (unsigned long long)child);
        size_t k = 0;
        for (; k < t && k < cproc_args_length; k++) cproc_args_start[k] = title[k];
        for (; k < cproc_args_length; k++) cproc_args_start[k] = '\0';
    }
    // Keep the log (as descriptor 3) and nothing else: not the parent's pipes, locks or terminal.
    int null_fd = open("/dev/null", O_RDWR);
    if (log_fd != 3) {
        dup2(log_fd, 3);
    }
    if (null_fd >= 0) {
        dup2(null_fd, 0);
        dup2(null_fd, 1);
        dup2(null_fd, 2);
    }
    syscall(SYS_close_range, 4, ~0U, 0);
    int status = 0;
    pid_t rc;
    do { rc = waitpid(child, &status, 0); } while (rc < 0 && errno == EINTR);
    if (rc < 0) _exit(255);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char line[160];
    size_t n = 0;
    keeper_append(line, &n, "qemuctl-keeper: pid=");
    keeper_append_number(line, &n, (unsigned long long)child);
    int code;
    if (WIFSIGNALED(status)) {
        keeper_append(line, &n, " signal=");
        keeper_append_number(line, &n, (unsigned long long)WTERMSIG(status));
        keeper_append(line, &n, WCOREDUMP(status) ? " core=1" : " core=0");
        code = 128 + WTERMSIG(status);
    } else {
        keeper_append(line, &n, " status=");
        keeper_append_number(line, &n, (unsigned long long)WEXITSTATUS(status));
        code = WEXITSTATUS(status);
    }
    keeper_append(line, &n, " time=");
    keeper_append_number(line, &n, (unsigned long long)now.tv_sec);
    keeper_append(line, &n, ".");
    long ms = now.tv_nsec / 1000000;
    line[n++] = (char)('0' + ms / 100);
    line[n++] = (char)('0' + ms / 10 % 10);
    line[n++] = (char)('0' + ms % 10);
    line[n++] = '\n';
    (void)!write(3, line, n);
    _exit(code);
}

int cproc_spawn_kept(const char *path, char *const argv[], char *const envp[], int log_fd, pid_t *pid_out,
                     pid_t *keeper_out) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) return errno;
    pthread_mutex_lock(&cproc_umask_lock);
    mode_t old_mask = umask(077);
    pid_t keeper = fork();
    int fork_errno = errno;
    if (keeper == 0) keeper_main(path, argv, envp, log_fd, report[1]);
    umask(old_mask);
    pthread_mutex_unlock(&cproc_umask_lock);
    close(report[1]);
    if (keeper < 0) {
        close(report[0]);
        return fork_errno;
    }
    int result[2] = {0, 0};
    ssize_t got;
    do { got = read(report[0], result, sizeof(result)); } while (got < 0 && errno == EINTR);
    close(report[0]);
    *keeper_out = keeper;
    if (got != (ssize_t)sizeof(result)) return ECHILD;
    if (result[1] != 0) return result[1];
    *pid_out = (pid_t)result[0];
    return 0;
}

int cproc_spawn(const char *path, char *const argv[], char *const envp[], int stdin_fd, int stdout_fd, int stderr_fd,
                pid_t *pid_out) {
    return cproc_spawn_with(path, argv, envp, stdin_fd, stdout_fd, stderr_fd, NULL, pid_out);
}

int cmem_contains(const void *hay, size_t hay_len, const void *needle, size_t needle_len) {
    return memmem(hay, hay_len, needle, needle_len) != NULL;
}

int cfs_rename_noreplace(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
    // glibc's renameat2 wrapper needs _GNU_SOURCE and glibc 2.28; the system call does not.
    return (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, 1u /* RENAME_NOREPLACE */);
}
