import Synchronization

/// Wakes one waiting task: signals that arrive while nobody waits are kept (as one), so a
/// signal is never lost between two waits. How the controller's loop sleeps until something
/// happens or a deadline passes, without polling.
package final class Wakeup: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
    }
    private let state = Mutex(State())

    /// Creates a wakeup with nothing pending.
    package init() {}

    /// Wakes the waiter, or the next one when nobody waits.
    package func signal() {
        let waiter: CheckedContinuation<Void, Never>? = state.withLock { s in
            if let w = s.waiter {
                s.waiter = nil
                return w
            }
            s.pending = true
            return nil
        }
        waiter?.resume()
    }

    /// Returns at the next ``signal()`` (at once when one is pending), or after `timeout`.
    ///
    /// - Important: one waiter at a time.
    package func wait(for timeout: Duration) async {
        let timer = Task { [self] in
            try? await Task.sleep(for: timeout)
            if !Task.isCancelled { signal() }
        }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now: Bool = state.withLock { s in
                if s.pending {
                    s.pending = false
                    return true
                }
                s.waiter = c
                return false
            }
            if now { c.resume() }
        }
        timer.cancel()
    }
}
