/// The agent's half of fencing: while a leader answers, the lease is renewed; once none has
/// answered for the lease the coordinator announced, the node stops its own work, so that the
/// coordinator may start it elsewhere after the lease plus its margin. Pure: time comes in.
public struct SelfFenceLease: Sendable {
    public enum Step: Sendable, Equatable {
        /// Stop every task and workload now.
        case fence(silence: Duration)
        /// A leader answers again: new work may arrive.
        case resume
    }

    private var lastContact: ContinuousClock.Instant?
    /// nil: the coordinator set no lease (selfFenceAfter 0), or none was announced yet.
    private var length: Duration?
    public private(set) var isFenced = false

    public init() {}

    /// A leader answered a message sent at `sent` (the lease counts from the send, which is no later
    /// than the coordinator's last contact). `length`, when the answer carried one, replaces the lease
    /// (zero turns it off). An answer to an older message never moves the lease back.
    public mutating func renew(at sent: ContinuousClock.Instant, length announced: Duration? = nil) {
        if lastContact.map({ sent > $0 }) ?? true { lastContact = sent }
        if let announced { length = announced > .zero ? announced : nil }
    }

    /// When a leader last answered, and the lease length, once both are known.
    public var current: (renewedAt: ContinuousClock.Instant, length: Duration)? {
        guard let lastContact, let length else { return nil }
        return (lastContact, length)
    }

    /// How long no leader has answered, once that is longer than the lease.
    public func expiredFor(at now: ContinuousClock.Instant) -> Duration? {
        guard let lastContact, let length else { return nil }
        let silence = now - lastContact
        return silence >= length ? silence : nil
    }

    /// What to do now; each step is returned once.
    public mutating func check(at now: ContinuousClock.Instant) -> Step? {
        if let silence = expiredFor(at: now) {
            guard !isFenced else { return nil }
            isFenced = true
            return .fence(silence: silence)
        }
        guard isFenced else { return nil }
        isFenced = false
        return .resume
    }

    /// When to check next: the moment the lease would run out, or soon while fenced or unset.
    public func nextCheck(after now: ContinuousClock.Instant, idle: Duration = .milliseconds(200)) -> ContinuousClock.Instant {
        guard !isFenced, let lastContact, let length else { return now + idle }
        return max(lastContact + length, now + .milliseconds(1))
    }
}
