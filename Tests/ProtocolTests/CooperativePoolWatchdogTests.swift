import CooperativePoolWatch
import Foundation
import SpecolaProtocol
import Testing
#if canImport(Glibc)
import Glibc
import SpecolaProcesses
#endif

/// The watchdog that fails tests during which the cooperative pool stalled, checked on the
/// background-priority pool: no test runs there, so blocking it here stalls no other test.
@Suite(.serialized) struct CooperativePoolWatchdogTests {
    /// Blocks on purpose: one more blocker than the pool has threads, so none is left to start a probe.
    static func blockBackgroundPool(milliseconds: UInt32) async {
        let blockers = (0...ProcessInfo.processInfo.activeProcessorCount).map { _ in
            Task.detached(priority: .background) { usleep(milliseconds * 1_000) }
        }
        for blocker in blockers { await blocker.value }
    }

    @Test func aPoolWhoseThreadsAllBlockIsReported() async throws {
        let watchdog = CooperativePoolWatchdog(limit: .milliseconds(400))
        defer { watchdog.stop() }
        watchdog.watch(.background)
        let begin = ContinuousClock.now
        await Self.blockBackgroundPool(milliseconds: 1_200)
        let stalls = watchdog.stalls(during: begin..<ContinuousClock.now)
        #expect(!stalls.isEmpty, "blocking every thread of the pool for 1.2 s went unnoticed")
        #expect(stalls.allSatisfy { $0.priority == .background && $0.duration > .milliseconds(400) })
    }

    @Test func waitingOnADedicatedThreadStallsNothing() async throws {
        let watchdog = CooperativePoolWatchdog(limit: .milliseconds(400))
        defer { watchdog.stop() }
        watchdog.watch(.background)
        let begin = ContinuousClock.now
        // The same blocking waits, each moved to a thread of its own.
        let waits = (0...ProcessInfo.processInfo.activeProcessorCount).map { _ in
            Task.detached(priority: .background) { await onDedicatedThread { usleep(1_200_000) } }
        }
        for wait in waits { await wait.value }
        #expect(watchdog.stalls(during: begin..<ContinuousClock.now).isEmpty)
    }

    @Test func aStallDuringTheStartupGraceIsNotCounted() async throws {
        let watchdog = CooperativePoolWatchdog(limit: .milliseconds(400), startupGrace: .seconds(5))
        defer { watchdog.stop() }
        watchdog.watch(.background)
        let begin = ContinuousClock.now
        await Self.blockBackgroundPool(milliseconds: 1_200)
        #expect(watchdog.stalls(during: begin..<ContinuousClock.now).isEmpty)
    }
}
