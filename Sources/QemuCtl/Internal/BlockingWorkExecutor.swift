#if canImport(Glibc)
import Glibc
#endif
import QMP

/// Runs jobs on threads of its own, outside the Swift concurrency cooperative pool.
///
/// The cooperative pool has one thread per core (two on a small machine). Launching and
/// observing many VMs at once makes blocking system calls (fsync of state files, spawning
/// QEMU, reading `/proc`); on the pool, two of them at a time stall every other VM's work.
/// Work run with this executor preferred (`withTaskExecutorPreference`) blocks only a
/// thread of its own.
///
/// A job never waits for a thread while fewer than ``maxThreads`` exist: a new one starts
/// when none is idle (Dispatch's own pools grow by about one thread a second when their
/// threads block, which serialised fifty VM launches). Idle threads end after a few seconds.
package final class BlockingWorkExecutor: TaskExecutor, @unchecked Sendable {
    /// The shared executor.
    package static let shared = BlockingWorkExecutor()

    /// The most threads at once; beyond it, jobs wait for one.
    package let maxThreads: Int
    // State under `mutex`; `cond` signals a job or an exit.
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    private var jobs: [UnownedJob] = []
    private var head = 0
    private var threads = 0
    private var idle = 0

    /// Creates an executor of at most `maxThreads` threads.
    package init(maxThreads: Int = 128) {
        self.maxThreads = max(1, maxThreads)
        pthread_mutex_init(&mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(&cond, &attr)
        pthread_condattr_destroy(&attr)
    }

    /// Queues `job`; starts a thread when no idle one is left to take it.
    package func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        pthread_mutex_lock(&mutex)
        jobs.append(job)
        // More jobs waiting than idle threads to take them: one more thread.
        let start = jobs.count - head > idle && threads < maxThreads
        if start { threads += 1 }
        pthread_cond_signal(&cond)
        pthread_mutex_unlock(&mutex)
        if start && !startDetachedThread({ [self] in work() }) {
            // No thread could start (the process is at its limit): the existing ones take the job.
            pthread_mutex_lock(&mutex)
            threads -= 1
            let none = threads == 0
            pthread_mutex_unlock(&mutex)
            if none { fatalError("BlockingWorkExecutor: cannot start a thread") }
        }
    }

    private func work() {
        let executor = asUnownedTaskExecutor()
        pthread_mutex_lock(&mutex)
        while true {
            if head < jobs.count {
                let job = jobs[head]
                head += 1
                if head == jobs.count { jobs.removeAll(keepingCapacity: true); head = 0 }
                pthread_mutex_unlock(&mutex)
                job.runSynchronously(on: executor)
                pthread_mutex_lock(&mutex)
                continue
            }
            // Nothing to do: wait up to 5 s for a job, then end this thread.
            var deadline = timespec()
            clock_gettime(CLOCK_MONOTONIC, &deadline)
            deadline.tv_sec += 5
            idle += 1
            let rc = pthread_cond_timedwait(&cond, &mutex, &deadline)
            idle -= 1
            if rc == ETIMEDOUT && head >= jobs.count {
                threads -= 1
                pthread_mutex_unlock(&mutex)
                return
            }
        }
    }
}
