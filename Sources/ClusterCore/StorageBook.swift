import SpecolaWire

/// Storage actions inside the replicated state: each committed with an id, sent to its node,
/// and closed by that node's report (or abandoned once the node is fenced). Deterministic like
/// the rest of `ClusterState`: time arrives inside commands.
///
/// It refuses a second unfinished action about the same brick (or, for volume-wide heals,
/// the same volume), so two leaders, or a leader and an operator, cannot start one twice.
public struct StorageBook: Sendable {
    public private(set) var actions: [String: Specola_V1_StorageAction] = [:]
    public private(set) var sequence: UInt64 = 0
    /// Operators' per-volume policies (`specola volume policy`), by volume; they override the config's.
    public private(set) var volumePolicies: [String: Specola_V1_VolumeStoragePolicy] = [:]

    /// Finished actions kept for `specola volume show` and the planner's retry limits.
    public static let finishedKept = 200

    public init() {}

    public init(snapshot: Specola_V1_ClusterSnapshot) {
        for action in snapshot.storageActions { actions[action.id] = action }
        sequence = snapshot.storageSequence
        for policy in snapshot.volumePolicies { volumePolicies[policy.volume] = policy }
    }

    public func write(into snapshot: inout Specola_V1_ClusterSnapshot) {
        snapshot.storageActions = ordered
        snapshot.storageSequence = sequence
        snapshot.volumePolicies = volumePolicies.keys.sorted().map { volumePolicies[$0]! }
    }

    /// Every action, oldest first.
    public var ordered: [Specola_V1_StorageAction] {
        actions.values.sorted { Self.number($0.id) < Self.number($1.id) }
    }

    public var pending: [Specola_V1_StorageAction] { ordered.filter { $0.state == .pending } }

    static func number(_ id: String) -> UInt64 { InstructionID.storageActionNumber(id) }

    /// The unfinished action that `action` would duplicate, if any.
    public func conflict(with action: Specola_V1_StorageAction) -> Specola_V1_StorageAction? {
        pending.first { existing in
            guard existing.volume == action.volume else { return false }
            switch (existing.kind, action.kind) {
            case (.heal, .heal), (.resolveSplitBrain, .resolveSplitBrain), (.setOption, .setOption): return true
            case (.heal, _), (_, .heal), (.resolveSplitBrain, _), (_, .resolveSplitBrain), (.setOption, _), (_, .setOption): return false
            default:
                let touched: Set<String> = [existing.brick, existing.newBrick].filter { !$0.isEmpty }.reduce(into: []) { $0.insert($1) }
                return touched.contains(action.brick) || (!action.newBrick.isEmpty && touched.contains(action.newBrick))
            }
        }
    }

    public mutating func apply(_ command: Specola_V1_StorageCommand, at: Int64, nodes: [String: Specola_V1_Node]) -> ApplyOutcome {
        switch command.op {
        case .add(var action):
            guard action.kind != .unspecified, !action.volume.isEmpty else { return .rejected(reason: "a storage action needs a kind and a volume") }
            guard nodes[action.node] != nil else { return .rejected(reason: "no node '\(action.node)' to carry out the action") }
            if action.kind == .replaceBrick, action.brick.isEmpty || action.newBrick.isEmpty {
                return .rejected(reason: "a brick replacement needs the old and the new brick")
            }
            if let existing = conflict(with: action) {
                return .rejected(reason: "\(existing.id) (\(Self.describe(existing))) is still pending for volume \(action.volume)")
            }
            sequence += 1
            action.id = InstructionID.storageAction(number: sequence).text
            action.state = .pending
            action.message = ""
            action.createdAtUnixMs = at
            action.finishedAtUnixMs = 0
            actions[action.id] = action
            trim()
            return .storageAction(id: action.id)
        case .abandon(let abandon):
            guard var action = actions[abandon.id], action.state == .pending else { return .rejected(reason: "no pending storage action '\(abandon.id)'") }
            guard WorkloadBook.isFenced(action.node, in: nodes) else {
                return .rejected(reason: "\(abandon.id) may still run on \(action.node); only a fenced node's action is abandoned")
            }
            action.state = .failed
            action.message = abandon.reason
            action.finishedAtUnixMs = at
            actions[action.id] = action
            return .done
        case .setPolicy(var policy):
            if let problem = Self.policyProblem(policy) { return .rejected(reason: problem) }
            policy.setAtUnixMs = at
            volumePolicies[policy.volume] = policy
            return .done
        case nil:
            return .rejected(reason: "storage command without an operation")
        }
    }

    /// An agent's word about an action it carried out; only the node it was sent to closes it.
    public mutating func apply(_ event: Specola_V1_StorageActionEvent, from node: String, at: Int64) {
        guard var action = actions[event.actionID], action.node == node, action.state == .pending else { return }
        action.state = event.ok ? .succeeded : .failed
        action.message = event.message
        action.finishedAtUnixMs = at
        action.agentFinishedAtUnixMs = event.atUnixMs
        action.spareUnusable = event.spareUnusable
        actions[action.id] = action
    }

    /// Instructions for every pending action, by node.
    public func dueInstructions() -> [(node: String, instruction: Specola_V1_Instruction)] {
        pending.map { action in (action.node, .with { $0.id = action.id; $0.storageAction = action }) }
    }

    /// Why a volume policy cannot be committed, or nil.
    public static func policyProblem(_ policy: Specola_V1_VolumeStoragePolicy) -> String? {
        guard !policy.volume.isEmpty else { return "a volume policy needs the volume's name" }
        guard let rule = StoragePolicy.SplitBrainPolicy(rawValue: policy.splitBrain) else {
            return "'\(policy.splitBrain)' is not a split-brain policy; use one of \(StoragePolicy.SplitBrainPolicy.allCases.map(\.rawValue).joined(separator: ", "))"
        }
        if rule == .sourceBrick, policy.sourceBrick.isEmpty { return "split-brain policy source-brick needs the source brick (HOST:PATH)" }
        guard StoragePolicy.HealPriority(committed: policy.healPriority) != nil else {
            return StoragePolicy.HealPriority.unknown(policy.healPriority)
        }
        guard policy.shdMaxThreads <= StoragePolicy.shdMaxThreadsLimit else {
            return "cluster.shd-max-threads is at most \(StoragePolicy.shdMaxThreadsLimit) (gluster's limit); 0 leaves gluster's value"
        }
        return nil
    }

    private mutating func trim() {
        let finished = ordered.filter { $0.state != .pending }
        guard finished.count > Self.finishedKept else { return }
        for action in finished.prefix(finished.count - Self.finishedKept) { actions.removeValue(forKey: action.id) }
    }

    /// "restart of brick H:/P", for messages.
    public static func describe(_ action: Specola_V1_StorageAction) -> String {
        switch action.kind {
        case .restartBrick: return "restart of brick \(action.brick)"
        case .replaceBrick: return "replacement of brick \(action.brick) by \(action.newBrick)"
        case .heal: return action.full ? "full heal of \(action.volume)" : "heal of \(action.volume)"
        case .resolveSplitBrain: return "split-brain resolution (\(action.splitBrainPolicy)) of \(action.files.count) file(s) in \(action.volume)"
        case .setOption: return "\(action.optionName) = \(action.optionValue) on \(action.volume)"
        case .unspecified, .UNRECOGNIZED: return "storage action"
        }
    }
}
