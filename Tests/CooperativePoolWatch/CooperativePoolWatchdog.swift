import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Watches Swift's cooperative pool from a thread of its own. The pool has one thread per
/// core (two here) and never grows, so a test or a library call that blocks one (waitpid,
/// fsync, usleep, a synchronous BMC call) or spins for seconds stalls every test of the run.
///
/// Every `interval` the watchdog hands the pool an empty job at each priority it watches
/// (each priority has a pool of its own) and notes how long the job waited for a thread.
/// A wait longer than `limit` is a stall. A busy but unblocked pool starts such a job within
/// milliseconds even with another process hogging a core, so seconds mean blocked threads.
/// The first `startupGrace` of the run is not watched: swift-testing then queues a job for
/// every test at once, and on a cold machine (binary paged in from disk) the probe waits
/// seconds behind that queue with no thread blocked.
public final class CooperativePoolWatchdog: @unchecked Sendable {
    public struct Stall: Sendable, CustomStringConvertible {
        public var start: ContinuousClock.Instant
        public var duration: Duration
        public var priority: TaskPriority
        public var description: String {
            "the cooperative pool (priority \(priority.rawValue)) started no job for \(duration.formatted(.units(allowed: [.seconds], fractionalPart: .show(length: 1))))"
        }
    }

    /// The one watchdog of a test process; its limit comes from SPECOLA_POOL_STALL_LIMIT_MS (default 2000).
    /// SPECOLA_POOL_STALL_GRACE_S (default 30) sets its start-up grace.
    public static let shared = CooperativePoolWatchdog(
        limit: .milliseconds(Int(ProcessInfo.processInfo.environment["SPECOLA_POOL_STALL_LIMIT_MS"] ?? "") ?? 2_000),
        startupGrace: .seconds(Int(ProcessInfo.processInfo.environment["SPECOLA_POOL_STALL_GRACE_S"] ?? "") ?? 30))

    public let limit: Duration
    /// Probes sent before this instant are not counted (the start-up queue of every test).
    private let watchedFrom: ContinuousClock.Instant
    private let interval: Duration
    private let lock = NSLock()
    private var priorities: Set<UInt8> = []
    /// Probes sent and not yet started, by priority: when each was sent.
    private var outstanding: [UInt8: ContinuousClock.Instant] = [:]
    private var recorded: [Stall] = []
    private var running = true

    public init(limit: Duration, startupGrace: Duration = .zero, interval: Duration = .milliseconds(25)) {
        self.limit = limit
        self.watchedFrom = ContinuousClock.now + startupGrace
        self.interval = interval
        let pause = Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18
        // The thread keeps the watchdog until `stop`.
        let thread = Thread { [self] in
            while tick() { Thread.sleep(forTimeInterval: pause) }
        }
        thread.name = "pool-watchdog"
        thread.start()
    }

    public func stop() { lock.withLock { running = false } }

    /// Starts probing the pool of `priority` (the caller's, usually).
    public func watch(_ priority: TaskPriority) {
        lock.withLock { _ = priorities.insert(priority.rawValue) }
    }

    /// Stalls that overlap `window`, including one still under way.
    public func stalls(during window: Range<ContinuousClock.Instant>) -> [Stall] {
        lock.withLock {
            var found = recorded.filter { $0.start < window.upperBound && $0.start + $0.duration > window.lowerBound }
            let now = ContinuousClock.now
            for (raw, sent) in outstanding where now - sent > limit && sent < window.upperBound && sent >= watchedFrom {
                found.append(Stall(start: sent, duration: now - sent, priority: TaskPriority(rawValue: raw)))
            }
            return found
        }
    }

    /// Where stack dumps of stalls go (SPECOLA_POOL_STALL_DUMP=DIR), taken with gdb, to find the blocker.
    private let dumpDirectory = ProcessInfo.processInfo.environment["SPECOLA_POOL_STALL_DUMP"]
    private var dumpedStallsSentAt: Set<ContinuousClock.Instant> = []

    private func dumpStacksOfStalls() {
        guard let directory = dumpDirectory else { return }
        let now = ContinuousClock.now
        let fresh: [ContinuousClock.Instant] = lock.withLock {
            let stalled = outstanding.values.filter { now - $0 > limit && $0 >= watchedFrom && !dumpedStallsSentAt.contains($0) }
            dumpedStallsSentAt.formUnion(stalled)
            return stalled
        }
        guard !fresh.isEmpty else { return }
        let file = "\(directory)/pool-stall-\(getpid())-\(dumpedStallsSentAt.count).txt"
        let gdb = Process()
        gdb.executableURL = URL(fileURLWithPath: "/usr/bin/gdb")
        gdb.arguments = ["-p", "\(getpid())", "-batch", "-ex", "thread apply all bt 30"]
        FileManager.default.createFile(atPath: file, contents: nil)
        gdb.standardOutput = FileHandle(forWritingAtPath: file)
        gdb.standardError = FileHandle.nullDevice
        try? gdb.run()
        gdb.waitUntilExit()
    }

    /// Sends a probe to every watched pool that has none outstanding; false once stopped.
    private func tick() -> Bool {
        dumpStacksOfStalls()
        let due: [UInt8] = lock.withLock {
            guard running else { return [] }
            return priorities.filter { outstanding[$0] == nil }
        }
        for raw in due {
            let sent = ContinuousClock.now
            lock.withLock { outstanding[raw] = sent }
            Task.detached(priority: TaskPriority(rawValue: raw)) { [self] in probeStarted(raw, sent: sent) }
        }
        return lock.withLock { running }
    }

    private func probeStarted(_ raw: UInt8, sent: ContinuousClock.Instant) {
        let waited = ContinuousClock.now - sent
        lock.withLock {
            outstanding[raw] = nil
            if waited > limit, sent >= watchedFrom {
                recorded.append(Stall(start: sent, duration: waited, priority: TaskPriority(rawValue: raw)))
            }
        }
    }
}

/// Fails a test during which the cooperative pool stalled (see `CooperativePoolWatchdog`).
/// Stalls are process-wide: every test running at that moment reports the same one.
public struct WatchesCooperativePool: SuiteTrait, TestTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        guard !test.isSuite else { return try await function() }
        let watchdog = CooperativePoolWatchdog.shared
        watchdog.watch(Task.currentPriority)
        let begin = ContinuousClock.now
        defer {
            for stall in watchdog.stalls(during: begin..<ContinuousClock.now) {
                Issue.record("\(stall), \(begin.duration(to: stall.start)) into this test: a thread of the pool was blocked (a process wait, fsync, sleep or synchronous I/O) or spinning; move that work to a thread of its own")
            }
        }
        try await function()
    }
}

extension Trait where Self == WatchesCooperativePool {
    /// See `WatchesCooperativePool`.
    public static var watchesCooperativePool: Self { Self() }
}

/// Runs each test of a suite on threads of its own instead of the cooperative pool, for tests
/// that call blocking APIs directly (the collectors, `runProcessBlocking`, FreeIPMI, openssl),
/// as the agent does from its dedicated collection queue.
public struct RunsOffThePool: SuiteTrait, TestTrait, TestScoping {
    /// The threads' nice value: CPU-bound simulations run at 10, so the processes and pool
    /// threads of tests running beside them get the cores first.
    public var niceness: Int32 = 0
    public var isRecursive: Bool { true }

    public func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        guard !test.isSuite else { return try await function() }
        try await withTaskExecutorPreference(TestThreadsExecutor.shared(niceness: niceness)) { try await function() }
    }
}

extension Trait where Self == RunsOffThePool {
    /// See `RunsOffThePool`.
    public static var runsOffThePool: Self { Self() }
    /// `runsOffThePool` at a lower CPU priority, for long CPU-bound tests (simulations, fuzzing).
    public static var cpuBoundOffThePool: Self { Self(niceness: 10) }
}

/// A task executor with a few threads of its own, kept for the whole run.
final class TestThreadsExecutor: TaskExecutor, @unchecked Sendable {
    /// One executor per nice value for the whole run. Threads per test would start hundreds at
    /// once (300 cases of a property test), and hundreds of runnable threads, even niced, leave
    /// the cooperative pool's two threads too little CPU. CPU-bound tests share two threads, as
    /// many as there are cores; tests that block (process waits, openssl) share six.
    static func shared(niceness: Int32) -> TestThreadsExecutor { niceness == 0 ? blocking : cpuBound }
    private static let blocking = TestThreadsExecutor(threads: 6, niceness: 0)
    private static let cpuBound = TestThreadsExecutor(threads: 2, niceness: 10)

    private let lock = NSCondition()
    private var jobs: [UnownedJob] = []

    init(threads: Int, niceness: Int32) {
        for index in 0..<threads {
            let thread = Thread { [self] in
                // On Linux a nice value set for the calling thread's id applies to that thread alone.
                if niceness != 0, let thread = Self.currentThreadID() {
                    _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), thread, niceness)
                }
                while let job = next() { job.runSynchronously(on: asUnownedTaskExecutor()) }
            }
            thread.name = "test-thread-\(index)"
            thread.start()
        }
    }

    /// The kernel's id of the calling thread, from /proc/thread-self ("PID/task/TID").
    static func currentThreadID() -> id_t? {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self"))
            .flatMap { $0.split(separator: "/").last }.flatMap { id_t($0) }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        lock.withLock {
            jobs.append(job)
            lock.signal()
        }
    }

    private func next() -> UnownedJob? {
        lock.withLock {
            while jobs.isEmpty { lock.wait() }
            return jobs.removeFirst()
        }
    }
}
