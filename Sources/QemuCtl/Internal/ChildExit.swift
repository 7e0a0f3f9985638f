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
    /// The child's pid.
    package let pid: Int32
    private let state = Mutex<Int32?>(nil)

    /// Starts the reaping thread for `pid`, a child of this process.
    init(reaping pid: Int32) {
        self.pid = pid
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
