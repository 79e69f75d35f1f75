import Foundation
import Synchronization
import Testing

/// Marks a suite of tests that start real clusters (replicas, agents, libvirtd, podman, BMCs).
/// At most `ProcessTestSlots.count` such tests run at once: on two cores, more only make them
/// miss each other's deadlines, while unit tests keep running in parallel beside them.
public struct ProcessTestTrait: SuiteTrait, TestTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        guard !test.isSuite else { return try await function() }
        await ProcessTestSlots.shared.acquire()
        defer { ProcessTestSlots.shared.release() }
        try await function()
    }
}

extension Trait where Self == ProcessTestTrait {
    /// See `ProcessTestTrait`.
    public static var processTest: Self { Self() }
}

/// A counting semaphore for process tests; its size comes from SPECOLA_PROCESS_TEST_SLOTS (default 2).
public final class ProcessTestSlots: Sendable {
    public static let shared = ProcessTestSlots(
        count: max(1, Int(ProcessInfo.processInfo.environment["SPECOLA_PROCESS_TEST_SLOTS"] ?? "") ?? 2))

    public let count: Int
    private let state: Mutex<(free: Int, waiting: [CheckedContinuation<Void, Never>])>

    public init(count: Int) {
        self.count = count
        state = Mutex((count, []))
    }

    public func acquire() async {
        await withCheckedContinuation { continuation in
            let granted = state.withLock { state -> Bool in
                if state.free > 0 {
                    state.free -= 1
                    return true
                }
                state.waiting.append(continuation)
                return false
            }
            if granted { continuation.resume() }
        }
    }

    public func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiting.isEmpty {
                state.free += 1
                return nil
            }
            return state.waiting.removeFirst()
        }
        next?.resume()
    }
}
