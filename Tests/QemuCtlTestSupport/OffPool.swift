import Dispatch
public import Testing

/// Runs jobs on Dispatch threads that are not the Swift concurrency cooperative pool (the tests'
/// own: Dispatch grows its threads slowly, which paces the suite; the product's elastic
/// `BlockingWorkExecutor` starts a thread per blocked job).
///
/// On a 2-core machine the cooperative pool has two threads. Tests that block a thread (a
/// synchronous QMP client, `waitUntilExit`, `usleep` while QEMU starts) would otherwise take
/// both, and every other test's QMP deadline would expire while its task waits for a thread.
public final class TestBlockingExecutor: TaskExecutor, @unchecked Sendable {
    /// The shared executor.
    public static let shared = TestBlockingExecutor()
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

/// A trait that runs a suite's or test's code on ``TestBlockingExecutor`` instead of the
/// cooperative pool: for tests that block threads.
public struct OffPoolTrait: TestTrait, SuiteTrait, TestScoping {
    /// Applies to every test of a suite.
    public var isRecursive: Bool { true }

    /// Runs `function` with the blocking executor preferred.
    public func provideScope(for test: Test, testCase: Test.Case?, performing function: @concurrent @Sendable () async throws -> Void) async throws {
        try await withTaskExecutorPreference(TestBlockingExecutor.shared) { try await function() }
    }
}

extension Trait where Self == OffPoolTrait {
    /// Runs the code on threads outside the cooperative pool (see ``TestBlockingExecutor``).
    public static var offPool: Self { OffPoolTrait() }
}
