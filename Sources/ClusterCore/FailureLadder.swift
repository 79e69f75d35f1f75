import SpecolaAlerting
import SpecolaWire

/// What the health executor is told to do. The ladder decides; the executor only carries out.
public enum HealthDirective: Sendable, Equatable {
    /// Propose this step for the node; report the outcome with `onCommitted`.
    case commit(node: String, status: NodeStatus, reason: String, requestedBy: String)
    /// Power the node off through its BMC and read the state back; report with `onPowerOffResult`.
    case powerOff(node: String, bmc: HostPort)
    /// Power the node on through its BMC (unfence); failure only needs a log line.
    case powerOn(node: String, bmc: HostPort)
    /// Take the node out of service before it fails (cordon, or drain when `drain`).
    case takeOutOfService(node: String, drain: Bool, reason: String)
    case raise(BuiltinAlert)
    case resolve(BuiltinAlert)
    /// Tell the operator, once per node and problem.
    case report(node: String, severity: ReportSeverity, message: String)

    public enum ReportSeverity: Sendable, Equatable { case warning, error }
}

/// The leader's failure ladder as one value: the step rules (`NodeHealth`), the mass-failure
/// brake, BMC power-off attempts, stuck fencing and early warning. Pure: it returns directives,
/// and the health executor carries them out and reports back. Soft state, rebuilt by each leader.
public struct FailureLadder: Sendable {
    public struct Settings: Sendable {
        public var policy: NodeHealth.Policy
        /// Each node's BMC, from the coordinator's configuration only: a node's report about its
        /// own BMC is never trusted for fencing (it could name another server).
        public var bmcAddresses: [String: HostPort]
        /// False when no BMC credentials are configured: no power-off is attempted.
        public var bmcCredentials: Bool
        public var earlyWarning: EarlyWarning
        public var retryPowerOffAfterMs: Int64

        public init(policy: NodeHealth.Policy, bmcAddresses: [String: HostPort] = [:], bmcCredentials: Bool = false,
                    earlyWarning: EarlyWarning = EarlyWarning(), retryPowerOffAfterMs: Int64 = 5_000) {
            self.policy = policy
            self.bmcAddresses = bmcAddresses
            self.bmcCredentials = bmcCredentials
            self.earlyWarning = earlyWarning
            self.retryPowerOffAfterMs = retryPowerOffAfterMs
        }
    }

    public enum PowerOffOutcome: Sendable, Equatable {
        case confirmedOff
        case failed(String)
    }

    /// One node as the leader sees it in a pass.
    public struct NodeView: Sendable {
        public var node: Specola_V1_Node
        /// Last contact this leader had with the node's agent (Unix ms); 0 if none.
        public var lastContactUnixMs: Int64
        /// Why the node's bricks hold the only up-to-date copy of data still to heal, or nil
        /// (`StorageView.soleHealSources`). Such a node is neither powered off nor drained.
        public var soleHealSource: String?

        public init(node: Specola_V1_Node, lastContactUnixMs: Int64, soleHealSource: String? = nil) {
            self.node = node
            self.lastContactUnixMs = lastContactUnixMs
            self.soleHealSource = soleHealSource
        }
    }

    /// Why an operator's fence was refused.
    public struct FenceRefusal: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    enum Attempt: Sendable, Equatable {
        case running
        case confirmedOff
        case failed(String, atUnixMs: Int64)
    }

    public let settings: Settings
    private var attempts: [String: Attempt] = [:]
    /// Nodes with a problem reported since their status last changed (one report each).
    private var reported: Set<String> = []
    /// Nodes whose FencingStuck alert fired.
    private var stuckAlerted: Set<String> = []
    /// Nodes whose self-reported BMC disagreement was logged.
    private var bmcMismatchReported: Set<String> = []
    /// Nodes not powered off because they hold the only copy of data to heal (FencingHeldForStorage fired).
    private var heldForStorage: Set<String> = []

    public init(settings: Settings) {
        self.settings = settings
    }

    /// Where fencing powers `node` off, or nil when it cannot (no address or no credentials configured).
    public func bmc(of node: String) -> HostPort? {
        settings.bmcCredentials ? settings.bmcAddresses[node] : nil
    }

    /// The brake's limit: how many nodes may be fencing or fenced at once.
    public func brakeLimit(nodeCount: Int) -> Int {
        max(1, Int(Double(nodeCount) * settings.policy.maxFencedFraction))
    }

    /// One pass over every node. `leaderSinceUnixMs`: when this replica became leader (only
    /// silence it witnessed itself proves a lease ran out).
    public mutating func onPass(_ views: [NodeView], leaderSinceUnixMs: Int64, nowUnixMs now: Int64) -> [HealthDirective] {
        var directives: [HealthDirective] = []
        let views = views.sorted { $0.node.name < $1.node.name }
        let limit = brakeLimit(nodeCount: views.count)
        var outOfService = views.filter { $0.node.committed.isFencingOrFenced }.count
        for view in views {
            let node = view.node
            directives += checkReportedBMC(node)
            let seen = max(view.lastContactUnixMs, node.lastSeenUnixMs)
            let committed = node.committed
            let observation = NodeHealth.Observation(
                committed: committed, silenceMs: now - seen, leaseSilenceMs: now - max(seen, leaderSinceUnixMs),
                fencingAllowed: outOfService < limit,
                bmcConfirmedOff: attempts[node.name] == .confirmedOff,
                powerOffSent: attempts[node.name] != nil,
                requested: !node.fenceRequestedBy.isEmpty)
            if let (status, reason) = NodeHealth.next(observation, policy: settings.policy) {
                if status == .fencing { outOfService += 1 }
                directives.append(.commit(node: node.name, status: status, reason: reason, requestedBy: ""))
                continue
            }
            directives += releaseStorageHold(view, committed: committed)
            switch committed {
            case .fencing:
                if let hold = storageHold(view) {
                    directives += hold
                } else {
                    directives += powerOffIfDue(node.name, now: now)
                }
                if now - node.statusSinceUnixMs >= settings.policy.stuckAfterMs, reported.insert(node.name).inserted {
                    let problem = "fencing stuck for \((now - node.statusSinceUnixMs) / 1000) s: no proof the node runs nothing (BMC: \(attemptSummary(node.name))); its work stays put"
                    directives.append(.report(node: node.name, severity: .error, message: problem
                        + ". Power it off by hand, then `specola node fence \(node.name)` again, or `specola node unfence \(node.name)` if it is healthy"))
                    stuckAlerted.insert(node.name)
                    directives.append(.raise(BuiltinAlert.fencingStuck(node: node.name, reason: problem)))
                }
            case .down where settings.policy.fencingEnabled && outOfService >= limit:
                if reported.insert(node.name).inserted {
                    directives.append(.report(node: node.name, severity: .error, message:
                        "fencing held back: \(outOfService) of \(views.count) nodes are fencing or fenced (limit \(limit)); check the cluster, then `specola node fence \(node.name) --force` if it must be fenced"))
                }
            default:
                break
            }
        }
        for view in views where !view.node.committed.isFencingOrFenced {
            guard let (action, reason) = settings.earlyWarning.step(for: view.node, nowUnixMs: now) else { continue }
            if action == .drain, let source = view.soleHealSource {
                // Draining leads to maintenance; this node's disks still hold data no other brick has.
                if !view.node.cordoned {
                    directives.append(.takeOutOfService(node: view.node.name, drain: false, reason: reason + "; cordoned, not drained: " + source))
                }
                continue
            }
            directives.append(.takeOutOfService(node: view.node.name, drain: action == .drain, reason: reason))
        }
        return directives
    }

    /// A step was committed: attempts and reports of the old step end.
    public mutating func onCommitted(node: String, status: NodeStatus, nowUnixMs: Int64) -> [HealthDirective] {
        reported.remove(node)
        guard status != .fencing else { return [] }
        attempts.removeValue(forKey: node)
        guard stuckAlerted.remove(node) != nil else { return [] }
        return [.resolve(BuiltinAlert.fencingStuck(node: node, reason: ""))]
    }

    /// The executor's power-off finished.
    public mutating func onPowerOffResult(node: String, _ outcome: PowerOffOutcome, nowUnixMs: Int64) -> [HealthDirective] {
        switch outcome {
        case .confirmedOff:
            attempts[node] = .confirmedOff
            return []
        case .failed(let problem):
            attempts[node] = .failed(problem, atUnixMs: nowUnixMs)
            return [.report(node: node, severity: .error, message:
                "fencing through the BMC failed (BMC \(settings.bmcAddresses[node].map { "\($0)" } ?? "?")): \(problem); retrying, and the self-fence lease still counts")]
        }
    }

    /// `specola node fence NAME [--force]`: the brake, and the storage hold (`soleHealSources`), apply unless forced.
    public func operatorFence(_ name: String, nodes: [Specola_V1_Node], by operatorName: String, force: Bool,
                              soleHealSources: [String: String] = [:]) -> Result<[HealthDirective], FenceRefusal> {
        guard let node = nodes.first(where: { $0.name == name }) else {
            return .failure(FenceRefusal(description: "no node named '\(name)'; `specola nodes` lists the known nodes"))
        }
        if node.committed.isFencingOrFenced { return .success([]) }
        if let source = soleHealSources[name], !force {
            return .failure(FenceRefusal(description:
                "refused: \(source); fencing may power it off. Let the heal finish (`specola volumes`), or add --force"))
        }
        let outOfService = nodes.filter { $0.committed.isFencingOrFenced }.count
        let limit = brakeLimit(nodeCount: nodes.count)
        if outOfService >= limit && !force {
            return .failure(FenceRefusal(description:
                "refused: \(outOfService) of \(nodes.count) nodes are already fencing or fenced, and the mass-failure brake allows \(limit) (fencing.maxFencedFraction \(settings.policy.maxFencedFraction)); check the cluster first, or add --force if this node must be fenced anyway"))
        }
        return .success([.commit(node: name, status: .fencing, reason: "requested by \(operatorName)" + (force && outOfService >= limit ? " (--force past the brake)" : ""), requestedBy: operatorName)])
    }

    /// `specola node unfence NAME`: power on where a BMC is configured, then let the agent rejoin.
    public func operatorUnfence(_ name: String, nodes: [Specola_V1_Node], by operatorName: String) -> Result<[HealthDirective], FenceRefusal> {
        guard let node = nodes.first(where: { $0.name == name }) else {
            return .failure(FenceRefusal(description: "no node named '\(name)'; `specola nodes` lists the known nodes"))
        }
        let committed = node.committed
        guard committed.isFencingOrFenced else {
            return .failure(FenceRefusal(description: "node \(name) is \(committed.word), not fencing or fenced"))
        }
        var directives: [HealthDirective] = bmc(of: name).map { [.powerOn(node: name, bmc: $0)] } ?? []
        directives.append(.commit(node: name, status: .recovered, reason: "unfenced by \(operatorName); waiting for its agent", requestedBy: ""))
        return .success(directives)
    }

    /// Directives that hold fencing's power-off back while the node holds the only up-to-date copy
    /// of data still to heal, or nil when it may go ahead: no such data, the BMC already reports the
    /// chassis off, or a power-off was already sent (it cannot be taken back).
    private mutating func storageHold(_ view: NodeView) -> [HealthDirective]? {
        let node = view.node
        guard let source = view.soleHealSource, node.facts.bmc.power != .off, attempts[node.name] == nil, bmc(of: node.name) != nil else {
            return nil
        }
        guard heldForStorage.insert(node.name).inserted else { return [] }
        let problem = "fencing does not power \(node.name) off: \(source)"
        return [
            .report(node: node.name, severity: .error, message: problem + "; its self-fence lease still counts, and its workloads move once that proves them stopped"),
            .raise(BuiltinAlert.fencingHeldForStorage(node: node.name, reason: problem)),
        ]
    }

    /// The hold ends when the data is safe elsewhere or the node leaves fencing.
    private mutating func releaseStorageHold(_ view: NodeView, committed: NodeStatus) -> [HealthDirective] {
        guard heldForStorage.contains(view.node.name), view.soleHealSource == nil || committed != .fencing else { return [] }
        heldForStorage.remove(view.node.name)
        return [.resolve(BuiltinAlert.fencingHeldForStorage(node: view.node.name, reason: ""))]
    }

    /// One power-off attempt at a time per node, retried after a pause when it failed.
    private mutating func powerOffIfDue(_ node: String, now: Int64) -> [HealthDirective] {
        guard let bmc = bmc(of: node) else { return [] }
        switch attempts[node] {
        case .running, .confirmedOff: return []
        case .failed(_, let at) where now - at < settings.retryPowerOffAfterMs: return []
        default:
            attempts[node] = .running
            return [.powerOff(node: node, bmc: bmc)]
        }
    }

    /// A node that reports a BMC other than the configured one is named once: fencing ignores the report.
    private mutating func checkReportedBMC(_ node: Specola_V1_Node) -> [HealthDirective] {
        let source = node.facts.bmc.source
        guard source.hasPrefix("lan:"), let reported = HostPort(parsing: String(source.dropFirst(4)), defaultPort: 623) else { return [] }
        let configured = settings.bmcAddresses[node.name]
        guard configured != reported, bmcMismatchReported.insert(node.name).inserted else { return [] }
        let uses = configured.map { "fencing uses the configured \($0)" }
            ?? "fencing.bmcAddresses names none, so this node is fenced by its self-fence lease only; add it there if the BMC is right"
        return [.report(node: node.name, severity: .warning, message: "node reports its BMC at \(reported); \(uses)")]
    }

    private func attemptSummary(_ node: String) -> String {
        switch attempts[node] {
        case .running: return "power-off in progress"
        case .confirmedOff: return "confirmed off"
        case .failed(let problem, _): return problem
        case nil: return bmc(of: node) == nil ? "none configured" : "no attempt yet"
        }
    }
}

