import SpecolaJobs
import SpecolaWire

/// The leader's storage decisions: which brick to restart, which to replace and where, which
/// split-brain files to resolve. Pure: it reads the committed view and returns directives; the
/// storage controller proposes them and the bricks' agents carry them out. Its one piece of
/// memory (since when a disk has been failing) is soft state, rebuilt by each leader.
public struct HealPlanner: Sendable {
    public enum Directive: Sendable, Equatable {
        /// Commit this action; the state gives it its id.
        case propose(Specola_V1_StorageAction)
        /// Close a pending action whose node was fenced before it reported.
        case abandon(id: String, reason: String)
    }

    /// What one pass decided, and why it left the rest alone (by volume, for `specola volume show`).
    public struct Plan: Sendable, Equatable {
        public var directives: [Directive] = []
        public var heldBack: [String: [String]] = [:]
    }

    /// What a pass reads: nodes with their facts, each node's liveness as the leader sees it,
    /// the storage actions already committed, and the time.
    public struct Input: Sendable {
        public var nodes: [String: Specola_V1_Node]
        public var status: [String: NodeStatus]
        public var storage: StorageBook
        public var nowUnixMs: Int64

        public init(nodes: [String: Specola_V1_Node], status: [String: NodeStatus], storage: StorageBook, nowUnixMs: Int64) {
            self.nodes = nodes
            self.status = status
            self.storage = storage
            self.nowUnixMs = nowUnixMs
        }

        public init(state: ClusterState, status: [String: NodeStatus], nowUnixMs: Int64) {
            self.init(nodes: state.nodes, status: status, storage: state.storage, nowUnixMs: nowUnixMs)
        }
    }

    /// Why an operator's request was refused.
    public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        public enum Code: Sendable, Equatable { case unknownVolume, unknownBrick, refused }
        public var code: Code
        public var description: String

        public init(code: Code, description: String) {
            self.code = code
            self.description = description
        }
    }

    /// A brick's condition, worst first.
    public enum BrickHealth: Sendable, Equatable {
        /// Its node is fenced: the brick is gone until the node is back.
        case lost(String)
        case diskFailing(String)
        /// Its node is not ready (suspect, down, fencing): nothing can be done there now.
        case unreachable(String)
        /// Its process is not running on a ready node.
        case processDown
        /// No node reports hosting it.
        case unknown
        case healthy

        public var isHealthy: Bool { self == .healthy }
    }

    public let policy: StoragePolicy
    /// Since when each brick's disk has been seen failing ("HOST:PATH" → Unix ms).
    private var failingSince: [String: Int64] = [:]

    public init(policy: StoragePolicy) {
        self.policy = policy
    }

    // MARK: - Health

    public static func health(of brick: StorageView.Brick, nodes: [String: Specola_V1_Node], status: [String: NodeStatus]) -> BrickHealth {
        guard let node = nodes[brick.node] else { return .unknown }
        if node.committed == .fenced { return .lost("node \(node.name) is fenced (\(node.statusReason))") }
        if let problem = diskProblem(brick.brick, node: node) { return .diskFailing(problem) }
        let live = status[node.name] ?? .down
        guard live == .ready else { return .unreachable("node \(node.name) is \(live.word)") }
        guard brick.statusKnown else { return .unknown }
        return brick.brick.online ? .healthy : .processDown
    }

    /// Why the storage under a brick cannot be trusted, or nil.
    static func diskProblem(_ brick: Specola_V1_GlusterBrick, node: Specola_V1_Node) -> String? {
        if brick.readOnly { return "the filesystem under \(brick.path) (\(brick.mountPoint)) is read-only" }
        for name in brick.disks {
            guard let disk = node.facts.storage.disks.first(where: { $0.name == name }) else { continue }
            if disk.smartStatus == "failed" {
                return "SMART reports disk \(name) on \(node.name) failing\(disk.smartDetail.isEmpty ? "" : " (\(disk.smartDetail))")"
            }
            if disk.ioErrors > 0 { return "disk \(name) on \(node.name) counted \(disk.ioErrors) I/O errors" }
        }
        return nil
    }

    // MARK: - Passes

    public mutating func onPass(_ input: Input) -> Plan {
        var plan = Plan()
        let now = input.nowUnixMs
        for action in input.storage.pending where WorkloadBook.isFenced(action.node, in: input.nodes) {
            plan.directives.append(.abandon(id: action.id, reason: "node \(action.node) was fenced before it reported how the action ended"))
        }
        let volumes = StorageView.volumes(input.nodes)
        var seenFailing: Set<String> = []
        var health: [String: [BrickHealth]] = [:]
        for volume in volumes {
            health[volume.name] = volume.bricks.map { Self.health(of: $0, nodes: input.nodes, status: input.status) }
            for (brick, condition) in zip(volume.bricks, health[volume.name]!) {
                if case .diskFailing = condition {
                    seenFailing.insert(brick.key)
                    if failingSince[brick.key] == nil { failingSince[brick.key] = now }
                }
            }
        }
        failingSince = failingSince.filter { seenFailing.contains($0.key) }
        guard policy.enabled else { return plan }

        var replacing = Self.replacementsRunning(input.storage, volumes: volumes)
        var spares = SpareFinder(policy: policy, input: input, volumes: volumes)
        // Higher priority first, then the volume with the least redundancy left.
        let ordered = volumes.sorted { a, b in
            let (pa, pb) = (policy.volume(a.name, in: input.storage).priority, policy.volume(b.name, in: input.storage).priority)
            if pa != pb { return pa > pb }
            let (ra, rb) = (Self.leastHealthy(a, health[a.name]!), Self.leastHealthy(b, health[b.name]!))
            return ra != rb ? ra < rb : a.name < b.name
        }
        for volume in ordered where volume.volume.status == "Started" {
            let conditions = health[volume.name]!
            var held: [String] = []
            for (index, brick) in volume.bricks.enumerated() {
                switch conditions[index] {
                case .healthy, .unknown, .unreachable:
                    continue
                case .processDown:
                    if let directive = restart(brick, volume: volume, input: input, held: &held) { plan.directives.append(directive) }
                case .diskFailing(let problem):
                    let since = failingSince[brick.key] ?? now
                    if let directive = replace(brick, volume: volume, conditions: conditions, problem: problem, since: since,
                                               replacing: &replacing, spares: &spares, input: input, held: &held) {
                        plan.directives.append(directive)
                    }
                case .lost(let problem):
                    let since = input.nodes[brick.node]?.statusSinceUnixMs ?? now
                    if let directive = replace(brick, volume: volume, conditions: conditions, problem: problem, since: since,
                                               replacing: &replacing, spares: &spares, input: input, held: &held) {
                        plan.directives.append(directive)
                    }
                }
            }
            if let directive = resolveSplitBrain(volume, input: input, held: &held) { plan.directives.append(directive) }
            if let directive = throttle(volume, input: input, held: &held) { plan.directives.append(directive) }
            if !held.isEmpty { plan.heldBack[volume.name] = held }
        }
        return plan
    }

    /// Replacements that still cost a heal: pending ones, and finished ones whose replica set
    /// still lists entries to heal (the full heal onto the new brick runs after the action ends).
    static func replacementsRunning(_ storage: StorageBook, volumes: [StorageView.Volume]) -> Int {
        storage.ordered.filter { action in
            guard action.kind == .replaceBrick else { return false }
            if action.state == .pending { return true }
            guard action.state == .succeeded, let volume = volumes.first(where: { $0.name == action.volume }),
                  let new = volume.bricks.first(where: { $0.key == action.newBrick }) else { return false }
            return volume.replicaSet(new.brick.replicaSet).contains { $0.brick.hasHealPending && $0.brick.healPending > 0 }
        }.count
    }

    /// The volume options the policy keeps set for healing, as (option, value): the heal
    /// throttle (`cluster.shd-max-threads`, when the policy names one) and the heal priority.
    static func healOptions(_ policy: StoragePolicy.VolumePolicy) -> [(name: String, value: String)] {
        var options = [(name: "performance.enable-least-priority", value: policy.healPriority.leastPriorityOption)]
        if policy.shdMaxThreads > 0 { options.insert((name: "cluster.shd-max-threads", value: "\(policy.shdMaxThreads)"), at: 0) }
        return options
    }

    /// Whether gluster's reported value of an option means `wanted` (it spells booleans several ways).
    static func optionHolds(_ current: String, _ wanted: String) -> Bool {
        let on: Set = ["on", "yes", "true", "enable", "1"], off: Set = ["off", "no", "false", "disable", "0"]
        let (c, w) = (current.lowercased(), wanted.lowercased())
        return c == w || (on.contains(c) && on.contains(w)) || (off.contains(c) && off.contains(w))
    }

    /// Keeps the volume's heal options at the policy's values, one `volume set` at a time. An
    /// option whose value the agents do not report (an older agent) is left alone.
    private func throttle(_ volume: StorageView.Volume, input: Input, held: inout [String]) -> Directive? {
        guard volume.volume.replicaCount > 1 || volume.volume.disperseCount > 0 else { return nil }
        let wanted = Self.healOptions(policy.volume(volume.name, in: input.storage)).first { option in
            guard let current = volume.volume.options[option.name] else { return false }
            return !Self.optionHolds(current, option.value)
        }
        guard let wanted else { return nil }
        let current = volume.volume.options[wanted.name]
        let earlier = input.storage.ordered.filter { $0.kind == .setOption && $0.volume == volume.name }
        if earlier.contains(where: { $0.state == .pending }) { return nil }
        if let last = earlier.last, input.nowUnixMs - last.finishedAtUnixMs < policy.restartRetryAfterMs { return nil }
        if let given = gaveUp(on: earlier, input: input) {
            held.append("heal throttle: \(given)")
            return nil
        }
        guard let runner = Self.runner(for: volume, input) else {
            held.append("heal throttle: no ready node hosts a brick of the volume to set \(wanted.name)")
            return nil
        }
        return .propose(.with {
            $0.kind = .setOption
            $0.volume = volume.name
            $0.node = runner
            $0.optionName = wanted.name
            $0.optionValue = wanted.value
            $0.reason = "volume policy wants \(wanted.name) \(wanted.value) (now \(current ?? "unknown"))"
            $0.requestedBy = WorkloadBook.controller
        })
    }

    /// Why the planner stops retrying a volume-wide action that keeps failing, or nil: at most
    /// `maxRestartAttempts` failures within `restartWindowMs`, then an operator decides.
    private func gaveUp(on earlier: [Specola_V1_StorageAction], input: Input) -> String? {
        let failed = earlier.filter { $0.state == .failed && input.nowUnixMs - $0.createdAtUnixMs < policy.restartWindowMs }
        guard failed.count >= policy.maxRestartAttempts, let last = failed.last else { return nil }
        return "\(failed.count) attempts failed in \(policy.restartWindowMs / 60_000) min (last, \(last.id): \(last.message)); left to an operator"
    }

    /// The fewest healthy bricks in any replica set of the volume.
    static func leastHealthy(_ volume: StorageView.Volume, _ conditions: [BrickHealth]) -> Int {
        volume.replicaSets.map { set in
            zip(volume.bricks, conditions).filter { $0.0.brick.replicaSet == set && $0.1.isHealthy }.count
        }.min() ?? 0
    }

    /// A dead brick process on a ready node: start it again (`volume start force`), then heal.
    private func restart(_ brick: StorageView.Brick, volume: StorageView.Volume, input: Input, held: inout [String]) -> Directive? {
        let now = input.nowUnixMs
        let earlier = input.storage.ordered.filter { $0.kind == .restartBrick && $0.volume == volume.name && $0.brick == brick.key }
        if earlier.contains(where: { $0.state == .pending }) { return nil }
        if let last = earlier.last, !Self.reportedSince(last, node: input.nodes[brick.node], nowUnixMs: now, retryAfterMs: policy.restartRetryAfterMs) {
            held.append("brick \(brick.key): waiting for a fresh report after \(last.id) (\(last.message))")
            return nil
        }
        let recent = earlier.filter { now - $0.createdAtUnixMs < policy.restartWindowMs }
        if recent.count >= policy.maxRestartAttempts {
            held.append("brick \(brick.key) is still down after \(recent.count) restarts in \(policy.restartWindowMs / 60_000) min; left to an operator (see the actions' messages)")
            return nil
        }
        let action = Specola_V1_StorageAction.with {
            $0.kind = .restartBrick
            $0.volume = volume.name
            $0.node = brick.node
            $0.brick = brick.key
            $0.oldPid = brick.brick.pid
            $0.replicaSet = brick.brick.replicaSet
            $0.reason = "brick process of \(brick.key) is not running while \(brick.node) is up"
            $0.requestedBy = WorkloadBook.controller
        }
        return input.storage.conflict(with: action) == nil ? .propose(action) : nil
    }

    /// Whether the brick's node has reported on GlusterFS since `action` ended there, so its facts
    /// show the outcome. A restart that succeeded changes the brick's process, so such a report
    /// comes; one that failed may change nothing, so then the pause alone counts. Without a
    /// report, four pauses are enough (the agent may be slow to collect).
    static func reportedSince(_ action: Specola_V1_StorageAction, node: Specola_V1_Node?, nowUnixMs now: Int64, retryAfterMs: Int64) -> Bool {
        let paused = now - action.finishedAtUnixMs
        guard paused >= retryAfterMs else { return false }
        guard action.state == .succeeded, let node else { return true }
        return node.glusterCollectedAtUnixMs > action.agentFinishedAtUnixMs || paused >= 4 * retryAfterMs
    }

    /// A brick whose disk fails, or whose node stays fenced: move it onto a spare, then heal.
    private func replace(
        _ brick: StorageView.Brick, volume: StorageView.Volume, conditions: [BrickHealth], problem: String, since: Int64,
        replacing: inout Int, spares: inout SpareFinder, input: Input, held: inout [String]
    ) -> Directive? {
        let now = input.nowUnixMs
        if input.storage.pending.contains(where: { $0.volume == volume.name && ($0.brick == brick.key || $0.newBrick == brick.key) }) {
            return nil
        }
        guard now - since >= policy.replaceAfterMs else {
            held.append("brick \(brick.key): \(problem); replaced in \((policy.replaceAfterMs - (now - since) + 999) / 1000) s unless it recovers")
            return nil
        }
        if let redundancy = redundancyProblem(brick, volume: volume, conditions: conditions) {
            held.append("brick \(brick.key): \(problem); not replaced because \(redundancy): replacing it now would lose redundancy further (`specola brick replace \(volume.name) \(brick.key) NEW --force` if it must)")
            return nil
        }
        guard replacing < policy.maxConcurrentReplacements else {
            held.append("brick \(brick.key): \(problem); waiting for a replacement slot (\(replacing) running, storage.maxConcurrentReplacements \(policy.maxConcurrentReplacements))")
            return nil
        }
        guard let spare = spares.take(for: brick, in: volume) else {
            let refused = spares.unusable.isEmpty ? "" : " (refused earlier: \(spares.unusable.sorted().joined(separator: ", ")))"
            held.append("brick \(brick.key): \(problem); no spare brick on a ready node outside its replica set\(refused) — add one to storage.spareBricks")
            return nil
        }
        replacing += 1
        return .propose(.with {
            $0.kind = .replaceBrick
            $0.volume = volume.name
            $0.node = spare.node
            $0.brick = brick.key
            $0.newBrick = spare.brick
            $0.replicaSet = brick.brick.replicaSet
            $0.reason = "\(problem); moving the brick to the spare \(spare.brick) on \(spare.node)"
            $0.requestedBy = WorkloadBook.controller
        })
    }

    /// Why the rest of the brick's replica set cannot carry a replacement now, or nil.
    func redundancyProblem(_ brick: StorageView.Brick, volume: StorageView.Volume, conditions: [BrickHealth]) -> String? {
        let others = zip(volume.bricks, conditions).filter { $0.0.brick.replicaSet == brick.brick.replicaSet && $0.0.key != brick.key }
        if let (other, condition) = others.first(where: { !$0.1.isHealthy }) {
            return "another brick of replica set \(brick.brick.replicaSet), \(other.key), is unhealthy too (\(condition.summary))"
        }
        // An online brick that no heal summary counted may be the only up-to-date copy of some entries.
        if brick.brick.online && !brick.brick.hasHealPending {
            return "its heal count is unknown (no agent's heal summary counted it), so it may hold the only up-to-date copy of some entries"
        }
        // Entries listed to heal on this brick alone have no other up-to-date copy (as last reported).
        if brick.brick.healPending > 0, !others.contains(where: { $0.0.brick.healPending > 0 }) {
            return "it holds the only up-to-date copy of \(brick.brick.healPending) entries still to heal"
        }
        return nil
    }

    /// Split-brain files resolved by the volume's policy; `manual` leaves them to the SplitBrain alert.
    private func resolveSplitBrain(_ volume: StorageView.Volume, input: Input, held: inout [String]) -> Directive? {
        let counted = volume.bricks.contains { $0.brick.hasSplitBrain && $0.brick.splitBrain > 0 }
        guard counted, !volume.splitBrainFiles.isEmpty else { return nil }
        let rule = policy.volume(volume.name, in: input.storage)
        guard rule.splitBrain != .manual else {
            held.append("\(volume.splitBrainFiles.count) file(s) in split-brain wait for an operator (policy manual)")
            return nil
        }
        if rule.splitBrain == .sourceBrick && rule.sourceBrick.isEmpty {
            held.append("split-brain policy source-brick needs storage.volumes.\(volume.name).sourceBrick")
            return nil
        }
        // gluster's latest-mtime and bigger-file compare only the copies it reaches (mtime: the
        // ctime feature's copy when features.ctime is on, else the backend's). A copy out of sight
        // may be the newest or biggest; resolving without it would make a stale copy the source.
        if let unseen = volume.bricks.first(where: { !$0.statusKnown || !$0.brick.online || (!$0.node.isEmpty && input.status[$0.node] != .ready) }) {
            held.append("split-brain waits: brick \(unseen.key) is offline or its node is not ready, and \(rule.splitBrain.rawValue) would compare only the copies in sight")
            return nil
        }
        let earlier = input.storage.ordered.filter { $0.kind == .resolveSplitBrain && $0.volume == volume.name }
        if earlier.contains(where: { $0.state == .pending }) { return nil }
        if let last = earlier.last, input.nowUnixMs - last.finishedAtUnixMs < policy.restartRetryAfterMs { return nil }
        if let given = gaveUp(on: earlier, input: input) {
            held.append("split-brain: \(given); the SplitBrain alert names the files")
            return nil
        }
        guard let runner = Self.runner(for: volume, input) else {
            held.append("split-brain: no ready node hosts a brick of the volume")
            return nil
        }
        return .propose(.with {
            $0.kind = .resolveSplitBrain
            $0.volume = volume.name
            $0.node = runner
            $0.splitBrainPolicy = rule.splitBrain.rawValue
            $0.sourceBrick = rule.sourceBrick
            $0.files = Array(volume.splitBrainFiles.prefix(100))
            $0.reason = "\(volume.splitBrainFiles.count) file(s) in split-brain; volume policy \(rule.splitBrain.rawValue)"
            $0.requestedBy = WorkloadBook.controller
        })
    }

    /// A ready node hosting a brick of the volume, to run a volume-wide command; nil if none.
    static func runner(for volume: StorageView.Volume, _ input: Input) -> String? {
        volume.bricks.first { input.status[$0.node] == .ready && input.nodes[$0.node]?.committed != .fenced }?.node
    }

    // MARK: - Operators

    /// `specola volume heal VOL [--full]` and `specola brick replace VOL OLD NEW [--force]`: checked
    /// like the planner's own actions, then committed by the caller.
    public func operatorRequest(_ request: Specola_V1_StorageRequest, by identity: String, _ input: Input) -> Result<Specola_V1_StorageAction, Refusal> {
        let volumes = StorageView.volumes(input.nodes)
        guard let volume = volumes.first(where: { $0.name == request.volume }) else {
            let known = volumes.map(\.name)
            return .failure(Refusal(code: .unknownVolume, description:
                "no volume named '\(request.volume)'; `specola volumes` lists them (known: \(known.isEmpty ? "none" : known.joined(separator: ", ")))"))
        }
        switch request.action {
        case "heal":
            guard let runner = Self.runner(for: volume, input) else {
                return .failure(Refusal(code: .refused, description: "no ready node hosts a brick of \(volume.name); nothing can run the heal"))
            }
            return .success(.with {
                $0.kind = .heal
                $0.volume = volume.name
                $0.node = runner
                $0.full = request.full
                $0.reason = "requested by \(identity)"
                $0.requestedBy = identity
            })
        case "replace-brick":
            return replaceRequest(request, volume: volume, by: identity, input)
        default:
            return .failure(Refusal(code: .refused, description: "unknown storage action '\(request.action)'; use heal or replace-brick"))
        }
    }

    /// `specola volume policy VOL ...`: the volume must exist and a source brick must be one of its bricks.
    public func policyRequest(_ request: Specola_V1_StorageRequest, by identity: String, _ input: Input) -> Result<Specola_V1_VolumeStoragePolicy, Refusal> {
        let volumes = StorageView.volumes(input.nodes)
        guard let volume = volumes.first(where: { $0.name == request.volume }) else {
            let known = volumes.map(\.name)
            return .failure(Refusal(code: .unknownVolume, description:
                "no volume named '\(request.volume)'; `specola volumes` lists them (known: \(known.isEmpty ? "none" : known.joined(separator: ", ")))"))
        }
        var wanted = request.policy
        wanted.volume = volume.name
        wanted.setBy = identity
        if !wanted.sourceBrick.isEmpty, !volume.bricks.contains(where: { $0.key == wanted.sourceBrick }) {
            return .failure(Refusal(code: .unknownBrick, description:
                "volume \(volume.name) has no brick '\(wanted.sourceBrick)'; its bricks: \(volume.bricks.map(\.key).joined(separator: ", "))"))
        }
        if let problem = StorageBook.policyProblem(wanted) { return .failure(Refusal(code: .refused, description: problem)) }
        return .success(wanted)
    }

    private func replaceRequest(_ request: Specola_V1_StorageRequest, volume: StorageView.Volume, by identity: String, _ input: Input) -> Result<Specola_V1_StorageAction, Refusal> {
        guard let old = volume.bricks.first(where: { $0.key == request.oldBrick }) else {
            return .failure(Refusal(code: .unknownBrick, description:
                "volume \(volume.name) has no brick '\(request.oldBrick)'; its bricks: \(volume.bricks.map(\.key).joined(separator: ", "))"))
        }
        guard let colon = request.newBrick.firstIndex(of: ":"), request.newBrick[request.newBrick.index(after: colon)...].hasPrefix("/") else {
            return .failure(Refusal(code: .refused, description: "'\(request.newBrick)' is not a brick; write HOST:/PATH"))
        }
        let host = String(request.newBrick[..<colon])
        guard let target = input.nodes.keys.sorted().first(where: { StorageView.glusterHost(of: $0, in: input.nodes) == host }) else {
            return .failure(Refusal(code: .refused, description: "no node reports GlusterFS host '\(host)'; `specola volumes` shows the nodes and their bricks"))
        }
        guard input.status[target] == .ready else {
            return .failure(Refusal(code: .refused, description: "node \(target) (\(host)) is \(input.status[target]?.word ?? "unknown"), not ready"))
        }
        if volumes(input).contains(where: { $0.bricks.contains { $0.key == request.newBrick } }) {
            return .failure(Refusal(code: .refused, description: "\(request.newBrick) is already a brick"))
        }
        let conditions = volume.bricks.map { Self.health(of: $0, nodes: input.nodes, status: input.status) }
        if !request.force {
            if volume.replicaSet(old.brick.replicaSet).contains(where: { $0.node == target && $0.key != old.key }) {
                return .failure(Refusal(code: .refused, description:
                    "\(target) already holds a brick of replica set \(old.brick.replicaSet); two copies on one node are one failure apart. Pick another node or add --force"))
            }
            if let problem = redundancyProblem(old, volume: volume, conditions: conditions) {
                return .failure(Refusal(code: .refused, description: "refused: \(problem); replacing now would lose redundancy further. Add --force if it must"))
            }
        }
        return .success(.with {
            $0.kind = .replaceBrick
            $0.volume = volume.name
            $0.node = target
            $0.brick = old.key
            $0.newBrick = request.newBrick
            $0.replicaSet = old.brick.replicaSet
            $0.forced = request.force
            $0.reason = "requested by \(identity)" + (request.force ? " (--force)" : "")
            $0.requestedBy = identity
        })
    }

    private func volumes(_ input: Input) -> [StorageView.Volume] { StorageView.volumes(input.nodes) }
}

extension HealPlanner.BrickHealth {
    /// A few words for messages.
    public var summary: String {
        switch self {
        case .lost(let why), .diskFailing(let why), .unreachable(let why): return why
        case .processDown: return "its brick process is not running"
        case .unknown: return "no node reports it"
        case .healthy: return "healthy"
        }
    }
}

/// Picks spare bricks: a configured path on a ready node that holds no brick of the replica set,
/// not already a brick and not promised to another replacement.
struct SpareFinder {
    let policy: StoragePolicy
    let input: HealPlanner.Input
    var taken: Set<String>
    /// Spares an agent refused (missing or not empty): not picked again while the refusal is kept.
    let unusable: Set<String>

    init(policy: StoragePolicy, input: HealPlanner.Input, volumes: [StorageView.Volume]) {
        self.policy = policy
        self.input = input
        taken = Set(volumes.flatMap { $0.bricks.map(\.key) })
        for action in input.storage.pending where !action.newBrick.isEmpty { taken.insert(action.newBrick) }
        unusable = Set(input.storage.ordered.filter { $0.kind == .replaceBrick && $0.state == .failed && $0.spareUnusable }.map(\.newBrick))
        taken.formUnion(unusable)
    }

    mutating func take(for brick: StorageView.Brick, in volume: StorageView.Volume) -> (node: String, brick: String)? {
        let setNodes = Set(volume.replicaSet(brick.brick.replicaSet).map(\.node))
        for node in policy.spareBricks.keys.sorted() where !setNodes.contains(node) {
            guard input.status[node] == .ready, let record = input.nodes[node], record.committed != .fenced, !record.draining,
                  let host = StorageView.glusterHost(of: node, in: input.nodes) else { continue }
            for path in policy.spareBricks[node]! {
                let candidate = "\(host):\(path)"
                if taken.insert(candidate).inserted { return (node, candidate) }
            }
        }
        return nil
    }
}
