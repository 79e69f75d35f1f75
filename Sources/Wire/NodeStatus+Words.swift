/// `NodeStatus` (state.proto) is the one node-status vocabulary. The words operators see
/// (`specola nodes`, `--json`, metrics, logs, refusals) come from here and nowhere else.
public typealias NodeStatus = Specola_V1_NodeStatus

extension Specola_V1_NodeStatus {
    /// The word operators see.
    public var word: String {
        switch self {
        case .unspecified, .ready: "ready"
        case .suspect: "suspect"
        case .down: "down"
        case .fencing: "fencing"
        case .fenced: "fenced"
        case .recovered: "recovered"
        case .UNRECOGNIZED(let value): "status \(value)"
        }
    }

    /// The status a word names; nil for a word that names none.
    public init?(word: String) {
        guard let status = Self.allCases.first(where: { $0 != .unspecified && $0.word == word }) else { return nil }
        self = status
    }

    /// What a committed value means: a node with no step committed yet is ready.
    public var committed: Self {
        switch self {
        case .unspecified, .UNRECOGNIZED: .ready
        default: self
        }
    }

    public var isFencingOrFenced: Bool { self == .fencing || self == .fenced }

    /// The statuses liveness alone gives (silence thresholds), in ladder order.
    public static let liveness: [Self] = [.ready, .suspect, .down]

    /// How a node takes new work, as operators see it.
    public static func schedulingWord(cordoned: Bool, draining: Bool) -> String {
        draining ? "draining" : cordoned ? "cordoned" : "schedulable"
    }
}

extension Specola_V1_Node {
    /// The committed step on the failure ladder (ready when none was committed).
    public var committed: NodeStatus { committedStatus.committed }

    /// What operators see in an API view (`shown_status`).
    public var shown: NodeStatus { NodeStatus(word: shownStatus) ?? .ready }

    /// A record restored from a snapshot written before `NodeStatus` kept its committed step as
    /// text in field 2 (now `shown_status`): move it to `committed_status`.
    public mutating func upgradeLegacyStatus() {
        guard committedStatus == .unspecified, !shownStatus.isEmpty else { return }
        committedStatus = NodeStatus(word: shownStatus) ?? .ready
        shownStatus = ""
    }
}

extension Specola_V1_NodeHealthCommand {
    /// The step this command commits. A log entry written before `NodeStatus` carries it as text
    /// (`legacy_status`); an unknown word meant ready, as it did then.
    public var status: NodeStatus {
        if step != .unspecified { return step }
        return NodeStatus(word: legacyStatus) ?? .ready
    }
}
