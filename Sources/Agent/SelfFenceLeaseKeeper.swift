import Foundation
import Logging
import Synchronization

/// Holds the agent's `SelfFenceLease` between the link (which renews it when a leader answers) and
/// the self-fence watch (which checks it), and keeps a copy in the data directory so that an agent
/// restarted while cut off still stops the work it re-attached (`LeaseRecord`).
public final class SelfFenceLeaseKeeper: Sendable {
    let dataDir: String
    let logger: Logger
    private let lease = Mutex(SelfFenceLease())
    /// When the lease was last written to the data directory.
    private let saved = Mutex<ContinuousClock.Instant?>(nil)

    /// Starts from the previous agent process's last renewal, when it left one from this boot.
    public init(dataDir: String, logger: Logger) {
        self.dataDir = dataDir
        self.logger = logger
        guard let record = LeaseRecord.load(from: dataDir), let (renewedAt, length) = record.restored() else { return }
        lease.withLock { $0.renew(at: renewedAt, length: length) }
        logger.info("self-fence lease carried over from the previous agent process", metadata: [
            "lease.renewed_s_ago": "\((ContinuousClock.now - renewedAt).components.seconds)", "lease.length_ms": "\(record.lengthMs)",
        ])
    }

    /// A leader answered something this agent sent at `sent`; `length` when it announced the lease.
    public func renew(sentAt sent: ContinuousClock.Instant, length: Duration? = nil) {
        let current = lease.withLock { lease in
            lease.renew(at: sent, length: length)
            return lease.current
        }
        guard let current else { return }
        // At most once a second: an older record only makes a restarted agent fence sooner.
        let due = saved.withLock { saved in
            guard length != nil || saved.map({ ContinuousClock.now - $0 >= .seconds(1) }) ?? true else { return false }
            saved = .now
            return true
        }
        guard due else { return }
        do {
            try LeaseRecord(renewedAt: current.renewedAt, length: current.length).save(to: dataDir)
        } catch {
            logger.warning("cannot record the self-fence lease in the data directory; an agent restarted while cut off would not stop re-attached work until a leader answers",
                           metadata: ["dataDir": "\(dataDir)", "error": "\(error)"])
        }
    }

    /// How long no leader has answered, when the coordinator set a lease and it has run out.
    public func expiredFor(at now: ContinuousClock.Instant = .now) -> Duration? {
        lease.withLock { $0.expiredFor(at: now) }
    }

    /// What to do now, and when to check again (see `SelfFenceLease.check` and `nextCheck`).
    public func check(at now: ContinuousClock.Instant) -> (step: SelfFenceLease.Step?, next: ContinuousClock.Instant) {
        lease.withLock { lease in (lease.check(at: now), lease.nextCheck(after: now)) }
    }
}
