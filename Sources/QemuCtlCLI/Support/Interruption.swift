#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Ctrl-C (SIGINT) and SIGTERM while `apply` changes VMs, with the contract operators know from
/// package managers and terraform:
/// the first signal starts nothing new, lets the steps in flight finish and record their state,
/// and the command then exits with 128 + the signal (130 for Ctrl-C); a second signal exits at
/// once with that status. Whatever the moment, the next `apply` converges (the kill matrix proves
/// it for a process killed anywhere).
enum Interruption {
    /// Signals received since ``install()``.
    private static let count = Atomic<Int>(0)
    /// The first signal's number.
    private static let first = Atomic<Int32>(0)

    /// Unblocks SIGINT and SIGTERM for the whole process: called first in `main`, before any thread
    /// exists, so every thread inherits it. A parent may start us with them blocked (a test runner,
    /// some supervisors), and a blocked Ctrl-C would wait, pending, until the command ended.
    static func unblockAtStart() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    /// Installs the handlers (SIGINT, SIGTERM). Call it when the work that must not be cut starts.
    static func install() {
        for signal in [SIGINT, SIGTERM] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { signal in
                // Only async-signal-safe work here: atomics, write(2), _exit(2).
                if Interruption.count.add(1, ordering: .sequentiallyConsistent).newValue >= 2 {
                    _exit(128 + Interruption.first.load(ordering: .sequentiallyConsistent))
                }
                Interruption.first.store(signal, ordering: .sequentiallyConsistent)
                let message: StaticString = "\nqemuctl: interrupted: finishing the steps in flight and recording them, starting nothing new; interrupt again to exit at once\n"
                _ = write(2, message.utf8Start, message.utf8CodeUnitCount)
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(signal, &action, nil)
        }
    }

    /// Whether a signal arrived: handled, or still pending (sent, and no thread has run the
    /// handler yet: a busy thread can start the next VM in that moment otherwise).
    static var requested: Bool {
        if count.load(ordering: .sequentiallyConsistent) > 0 { return true }
        var pending = sigset_t()
        guard sigpending(&pending) == 0 else { return false }
        return sigismember(&pending, SIGINT) == 1 || sigismember(&pending, SIGTERM) == 1
    }

    /// The exit status of an interrupted command: 128 + the first signal (130, Ctrl-C, when it
    /// is still pending).
    static var status: Int32 {
        let signal = first.load(ordering: .sequentiallyConsistent)
        return 128 + (signal == 0 ? SIGINT : signal)
    }
}
