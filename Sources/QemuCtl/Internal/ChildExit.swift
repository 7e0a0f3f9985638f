#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import QMP
import Synchronization

/// The exit of a child process, reaped by a thread of its own as soon as it happens, so
/// the child never lingers as a zombie (which would still answer `kill(pid, 0)`) in a
/// long-lived process, and its exit status can be read without waiting.
package final class ChildExit: Sendable {
    /// The program's pid: the child's, or for a kept program the pid of the program its keeper
    /// started (the process to signal).
    package let pid: Int32
    private let state = Mutex<Int32?>(nil)

    /// Starts the reaping thread for `pid`, a child of this process.
    convenience init(reaping pid: Int32) { self.init(reaping: pid, for: pid) }

    /// Starts the reaping thread for `child`, a child of this process that runs `program` and exits
    /// with its status (a keeper, see `cproc_spawn_kept`).
    init(reaping child: Int32, for program: Int32) {
        self.pid = program
        let pid = child
        // Without a thread (the process is at its limit) the status stays unknown.
        _ = startDetachedThread { [self] in
            var status: Int32 = 0
            var rc: Int32
            repeat { rc = waitpid(pid, &status, 0) } while rc < 0 && errno == EINTR
            // Exit code, or 128 + the signal that ended it (the shell's convention).
            let code: Int32 = rc < 0 ? -1 : ((status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f))
            self.state.withLock { $0 = code }
        }
    }

    /// The exit status once the child has exited (128 + N when signal N ended it), else nil.
    package var status: Int32? { state.withLock { $0 } }
}
