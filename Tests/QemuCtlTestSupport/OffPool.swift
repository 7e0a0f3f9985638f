import Dispatch
public import Testing

/// Runs jobs on Dispatch threads that are not the Swift concurrency cooperative pool.
///
/// On a 2-core machine the cooperative pool has two threads. Tests that block a thread (a
/// synchronous QMP client, `waitUntilExit`, `usleep` while QEMU starts) would otherwise take
/// both, and every other test's QMP deadline would expire while its task waits for a thread.
public final class BlockingWorkExecutor: TaskExecutor, @unchecked Sendable {
    /// The shared executor.
    public static let shared = BlockingWorkExecutor()
    // A concurrent queue of its own targets an overcommitting root queue: a blocked job makes
    // Dispatch start another thread instead of waiting.
    private let queue = DispatchQueue(label: "qemuctl.tests.blocking", attributes: .concurrent)

    /// Runs `job` on a queue thread.
    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        queue.async { job.runSynchronously(on: executor) }
    }
}

/// A trait that runs a suite's or test's code on ``BlockingWorkExecutor`` instead of the
/// cooperative pool: for tests that block threads.
public struct OffPoolTrait: TestTrait, SuiteTrait, TestScoping {
    /// Applies to every test of a suite.
    public var isRecursive: Bool { true }

    /// Runs `function` with the blocking executor preferred.
    public func provideScope(for test: Test, testCase: Test.Case?, performing function: @concurrent @Sendable () async throws -> Void) async throws {
        try await withTaskExecutorPreference(BlockingWorkExecutor.shared) { try await function() }
    }
}

extension Trait where Self == OffPoolTrait {
    /// Runs the code on threads outside the cooperative pool (see ``BlockingWorkExecutor``).
    public static var offPool: Self { OffPoolTrait() }
}
