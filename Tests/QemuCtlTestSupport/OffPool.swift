package import QemuCtl
public import Testing

/// A trait that runs a suite's or test's code on ``BlockingWorkExecutor`` instead of the
/// cooperative pool: for tests that block threads (a synchronous QMP client, `waitUntilExit`,
/// `usleep` while QEMU starts), which on a 2-core machine would otherwise take both pool threads
/// and make every other test's QMP deadline expire.
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
