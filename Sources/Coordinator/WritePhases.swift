import Foundation
import Logging

/// Where a write's time goes on one replica, for the Raft benchmark: on when the coordinator
/// starts with `SPECOLA_WRITE_PHASES=1`, then summed and logged (at warning level, so the
/// benchmark's quiet logs keep it) every `interval`. Off, every call returns at once.
struct WritePhases {
    static let enabledByEnvironment = ProcessInfo.processInfo.environment["SPECOLA_WRITE_PHASES"] == "1"
    static let interval: Duration = .seconds(5)

    let enabled: Bool
    private var since = ContinuousClock.now
    /// Leader, per acknowledged write: call → handed to the core, → committed, → applied and answered.
    private var writes = 0
    private var queuedNanos: Int64 = 0
    private var committedNanos: Int64 = 0
    private var answeredNanos: Int64 = 0
    /// Every replica, per Ready written: the write and its fsync, and the entries it held.
    private var persists = 0
    private var persistNanos: Int64 = 0
    private var persistedEntries = 0
    /// Messages handed to the transport.
    private var messagesSent = 0

    init(enabled: Bool = Self.enabledByEnvironment) { self.enabled = enabled }

    static func nanos(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
    }

    mutating func answered(startedAt: ContinuousClock.Instant, proposedAt: ContinuousClock.Instant,
                           committedAt: ContinuousClock.Instant, now: ContinuousClock.Instant) {
        guard enabled else { return }
        writes += 1
        queuedNanos += Self.nanos(proposedAt - startedAt)
        committedNanos += Self.nanos(committedAt - proposedAt)
        answeredNanos += Self.nanos(now - committedAt)
    }

    mutating func persisted(entries: Int, took: Duration) {
        guard enabled else { return }
        persists += 1
        persistNanos += Self.nanos(took)
        persistedEntries += entries
    }

    mutating func sent(_ count: Int) {
        guard enabled else { return }
        messagesSent += count
    }

    /// Logs the sums once `interval` has passed, then starts over.
    mutating func reportIfDue(_ logger: Logger) {
        guard enabled else { return }
        let now = ContinuousClock.now
        guard now - since >= Self.interval else { return }
        func perWrite(_ nanos: Int64) -> String { writes > 0 ? String(format: "%.0f", Double(nanos) / Double(writes) / 1_000) : "-" }
        let seconds = Double(Self.nanos(now - since)) / 1e9
        let persistMicros = persists > 0 ? String(format: "%.0f", Double(persistNanos) / Double(persists) / 1_000) : "-"
        let entriesPerPersist = persists > 0 ? String(format: "%.1f", Double(persistedEntries) / Double(persists)) : "-"
        // One line of key=value fields, so the benchmark can pick it out of the log.
        logger.warning("""
            write phases: writes=\(writes) window_s=\(String(format: "%.1f", seconds)) \
            us_call_to_core=\(perWrite(queuedNanos)) us_core_to_commit=\(perWrite(committedNanos)) \
            us_commit_to_answer=\(perWrite(answeredNanos)) persists=\(persists) us_per_persist=\(persistMicros) \
            entries_per_persist=\(entriesPerPersist) persist_busy_pct=\(String(format: "%.0f", Double(persistNanos) / 1e9 / seconds * 100)) \
            messages_sent=\(messagesSent)
            """)
        self = WritePhases(enabled: enabled)
    }
}
