import SpecolaWire

/// Keeps a refused caller from flooding the Raft log through the audit: each principal gets
/// `burst` refusal records per window; beyond that, identical refusals (same principal, verb and
/// resource) fold into one record whose `repeats` counts them, written when the window ends.
public struct RefusalLimiter: Sendable {
    public let burst: Int
    public let windowMs: Int64
    private var windows: [String: (start: Int64, count: Int)] = [:]
    private var folded: [String: Specola_V1_AuditRecord] = [:]

    public init(burst: Int = 20, windowMs: Int64 = 60_000) {
        self.burst = burst
        self.windowMs = windowMs
    }

    /// The record to write now, or nil when it was folded into a later summary.
    public mutating func admit(_ record: Specola_V1_AuditRecord) -> Specola_V1_AuditRecord? {
        let now = record.atUnixMs
        var window = windows[record.principal] ?? (now, 0)
        if now - window.start >= windowMs { window = (now, 0) }
        window.count += 1
        windows[record.principal] = window
        if window.count <= burst { return record }
        let key = "\(record.principal)\u{0}\(record.verb)\u{0}\(record.resource)"
        if var summary = folded[key] {
            summary.repeats += 1
            summary.atUnixMs = now
            folded[key] = summary
        } else {
            var summary = record
            summary.repeats = 1
            summary.detail = "rate-limited: further identical refusals counted in repeats; first: " + record.detail
            folded[key] = summary
        }
        return nil
    }

    /// Summaries whose principal's window has ended by `now` (all of them with `all`).
    public mutating func drain(now: Int64, all: Bool = false) -> [Specola_V1_AuditRecord] {
        var due: [Specola_V1_AuditRecord] = []
        for (key, summary) in folded {
            let start = windows[summary.principal]?.start ?? 0
            if all || now - start >= windowMs {
                due.append(summary)
                folded.removeValue(forKey: key)
            }
        }
        windows = windows.filter { now - $0.value.start < windowMs }
        return due.sorted { ($0.atUnixMs, $0.principal) < ($1.atUnixMs, $1.principal) }
    }
}
