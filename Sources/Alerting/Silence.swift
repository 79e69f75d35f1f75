/// An operator's decision to mute every alert that its matchers select, for a time window.
public struct Silence: Sendable, Hashable, Codable, Identifiable {
    /// Where a silence is in its window.
    public enum State: String, Sendable, Hashable, Codable {
        case pending, active, expired
    }

    /// Chosen by whoever proposes it (e.g. a UUID), so that applying the change stays deterministic.
    public var id: String
    /// Every matcher must match; at least one is required, so a silence never mutes everything by accident.
    public var matchers: [LabelMatcher]
    public var startsAtUnixMs: Int64
    public var endsAtUnixMs: Int64
    public var createdBy: String
    public var comment: String

    public init(
        id: String, matchers: [LabelMatcher], startsAtUnixMs: Int64, endsAtUnixMs: Int64,
        createdBy: String, comment: String
    ) {
        self.id = id
        self.matchers = matchers
        self.startsAtUnixMs = startsAtUnixMs
        self.endsAtUnixMs = endsAtUnixMs
        self.createdBy = createdBy
        self.comment = comment
    }

    public func state(atUnixMs now: Int64) -> State {
        if now < startsAtUnixMs { return .pending }
        return now < endsAtUnixMs ? .active : .expired
    }

    /// True while active and every matcher matches the alert.
    public func mutes(_ alert: Alert, atUnixMs now: Int64) -> Bool {
        state(atUnixMs: now) == .active && matchers.matchAll(alert.matchLabels)
    }

    /// Checks what `AlertBook.apply` would otherwise reject, with a message for the operator.
    public func validate() throws(AlertingError) {
        guard !id.isEmpty else { throw AlertingError(.invalidSilence, "a silence needs an id") }
        guard !matchers.isEmpty else {
            throw AlertingError(.invalidSilence, "silence \(id) has no matchers and would mute every alert; add e.g. node=\"n3\"")
        }
        guard endsAtUnixMs > startsAtUnixMs else {
            throw AlertingError(.invalidSilence, "silence \(id) ends before it starts; give a positive duration")
        }
        for matcher in matchers { try matcher.validate() }
    }
}
