import SpecolaClusterCore
import Foundation
import Logging
import SpecolaAlerting
import SpecolaBMC
import SpecolaProtocol
import Synchronization

/// The leader's failure ladder: commits each node's step (ready, suspect,
/// down, fencing, fenced, recovered) as `NodeHealth` decides, and fences:
/// chassis power off through the node's BMC, confirmed by reading the power
/// state back, or the agent's self-fence lease running out. Without either
/// proof a node stays in `fencing` and nothing of it moves.
final class HealthController: Sendable {
    struct Settings: Sendable {
        var policy: NodeHealth.Policy
        var bmc: FencingConfig.BMCAccess?
        /// BMC addresses that override what agents report.
        var bmcAddresses: [String: HostPort] = [:]
        var earlyWarning = EarlyWarning()
        var interval: Duration = .milliseconds(250)
    }

    private enum Attempt: Sendable, Equatable {
        case running
        case confirmedOff
        case failed(String, atUnixMs: Int64)
    }

    let replica: Replica
    let settings: Settings
    private let logger: Logger
    private let attempts = Mutex<[String: Attempt]>([:])
    private let stuckReported = Mutex<Set<String>>([])
    private let loop: LeaderLoop
    /// Called after each committed step (the job controller moves work of fenced nodes).
    let onTransition: @Sendable () -> Void
    /// Where FencingStuck goes.
    let alerts: AlertController?

    init(replica: Replica, settings: Settings, logger: Logger, alerts: AlertController? = nil, onTransition: @escaping @Sendable () -> Void) {
        self.replica = replica
        self.settings = settings
        self.logger = logger
        self.alerts = alerts
        self.onTransition = onTransition
        loop = LeaderLoop(interval: settings.interval)
    }

    func nudge() { loop.nudge() }

    func run() async {
        await loop.run(replica) { since in
            // Grace after a leader change: every live agent reconnects before anyone is suspected.
            guard WallClock.nowUnixMs() - since >= settings.policy.suspectAfterMs else { return }
            await pass(leaderSinceUnixMs: since)
        }
    }

    func pass(leaderSinceUnixMs: Int64) async {
        let now = WallClock.nowUnixMs()
        let (state, lastContact) = await replica.healthView()
        let nodes = state.nodes.values.sorted { $0.name < $1.name }
        let brake = max(1, Int(Double(nodes.count) * settings.policy.maxFencedFraction))
        var fencingOrFenced = nodes.filter { ["fencing", "fenced"].contains($0.status) }.count
        for node in nodes {
            let seen = max(lastContact[node.name] ?? 0, node.lastSeenUnixMs)
            let committed = NodeHealth.Status(committed: node.status)
            let observation = NodeHealth.Observation(
                committed: committed, silenceMs: now - seen, leaseSilenceMs: now - max(seen, leaderSinceUnixMs),
                fencingAllowed: fencingOrFenced < brake,
                bmcConfirmedOff: attempts.withLock { $0[node.name] } == .confirmedOff,
                powerOffSent: attempts.withLock { $0[node.name] } != nil,
                requested: !node.fenceRequestedBy.isEmpty)
            guard let (status, reason) = NodeHealth.next(observation, policy: settings.policy) else {
                if committed == .fencing { fenceWithBMC(node, now: now) }
                if committed == .down, settings.policy.fencingEnabled, fencingOrFenced >= brake {
                    report(node.name, "fencing held back: \(fencingOrFenced) of \(nodes.count) nodes are fencing or fenced (limit \(brake)); check the cluster, then `specola node fence \(node.name)` if it must be fenced")
                }
                if committed == .fencing, now - node.statusSinceUnixMs >= settings.policy.stuckAfterMs {
                    let problem = "fencing stuck for \((now - node.statusSinceUnixMs) / 1000) s: no proof the node runs nothing (BMC: \(attemptSummary(node.name))); its work stays put"
                    if report(node.name, problem + ". Power it off by hand, then `specola node fence \(node.name)` again, or `specola node unfence \(node.name)` if it is healthy") {
                        alerts?.raise(BuiltinAlert.fencingStuck(node: node.name, reason: problem).fire(atUnixMs: now))
                        alerts?.nudge()
                    }
                }
                continue
            }
            if status == .fencing { fencingOrFenced += 1 }
            await commit(node.name, status, reason)
        }
        for node in nodes where !["fencing", "fenced"].contains(node.status) {
            if let (action, reason) = settings.earlyWarning.step(for: node, nowUnixMs: now) {
                await takeOutOfService(node.name, drain: action == .drain, reason: reason)
            }
        }
    }

    private func takeOutOfService(_ node: String, drain: Bool, reason: String) async {
        do {
            _ = try await replica.propose(.with {
                $0.proposedAtUnixMs = WallClock.nowUnixMs()
                $0.setNodeScheduling = .with { $0.node = node; $0.cordoned = true; $0.draining = drain }
            })
            logger.warning("early warning: node taken out of service before it fails", metadata: [
                "node.name": "\(node)", "action": "\(drain ? "drain" : "cordon")", "reason": "\(reason)",
            ])
            onTransition()
        } catch {
            logger.warning("early-warning cordon not committed; retried next pass", metadata: ["node.name": "\(node)", "error": "\(error)"])
        }
    }

    /// Proposes a step (used by the ladder and by `specola node fence|unfence`).
    /// `requestedBy`: the operator who asked for this fence, for `specola node fence`.
    func commit(_ node: String, _ status: NodeHealth.Status, _ reason: String, requestedBy: String = "") async {
        do {
            _ = try await replica.propose(.with {
                $0.proposedAtUnixMs = WallClock.nowUnixMs()
                $0.nodeHealth = .with {
                    $0.node = node
                    $0.status = status.rawValue
                    $0.reason = reason
                    $0.fenceRequestedBy = requestedBy
                }
            })
        } catch {
            logger.warning("node status change not committed; retried next pass", metadata: [
                "node.name": "\(node)", "node.status": "\(status)", "error": "\(error)",
            ])
            return
        }
        let level: Logger.Level = [.down, .fencing, .fenced].contains(status) ? .warning : .info
        logger.log(level: level, "node status changed", metadata: [
            "node.name": "\(node)", "node.status": "\(status)", "reason": "\(reason)",
        ])
        if status != .fencing {
            attempts.withLock { _ = $0.removeValue(forKey: node) }
            if stuckReported.withLock({ $0.remove(node) }) != nil {
                alerts?.raise(BuiltinAlert.fencingStuck(node: node, reason: "").resolve(atUnixMs: WallClock.nowUnixMs()))
            }
        }
        onTransition()
    }

    /// Where the node's BMC answers: configured, else what its agent reported ("lan:HOST:PORT").
    func bmcEndpoint(_ node: Specola_V1_Node) -> HostPort? {
        if let configured = settings.bmcAddresses[node.name] { return configured }
        let source = node.facts.bmc.source
        guard source.hasPrefix("lan:") else { return nil }
        return HostPort(parsing: String(source.dropFirst(4)), defaultPort: 623)
    }

    func bmc(for node: Specola_V1_Node) -> BMCPower? {
        guard let access = settings.bmc, let endpoint = bmcEndpoint(node) else { return nil }
        return BMCPower(host: endpoint.host, port: endpoint.port, user: access.user, password: access.password,
                        timeout: .milliseconds(Int64(access.timeout * 1000)))
    }

    /// One power-off attempt at a time per node, retried 5 s after a failure.
    private func fenceWithBMC(_ node: Specola_V1_Node, now: Int64) {
        guard let bmc = bmc(for: node) else { return }
        let start = attempts.withLock { attempts -> Bool in
            switch attempts[node.name] {
            case .running, .confirmedOff: return false
            case .failed(_, let at) where now - at < 5_000: return false
            default:
                attempts[node.name] = .running
                return true
            }
        }
        guard start else { return }
        logger.warning("fencing: powering the node off through its BMC", metadata: ["node.name": "\(node.name)", "bmc": "\(bmc)"])
        let name = node.name
        Task { [self] in
            let outcome: Attempt
            do {
                // FreeIPMI blocks for a round trip (seconds against a slow BMC): a thread of its own.
                try await onDedicatedThread("specola-fence") { try bmc.powerOff() }
                // Proof is the power state read back, not the accepted command.
                let deadline = ContinuousClock.now + .seconds(15)
                var state = try await onDedicatedThread("specola-fence") { try bmc.powerStatus() }
                while state != .off && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(250))
                    state = try await onDedicatedThread("specola-fence") { try bmc.powerStatus() }
                }
                outcome = state == .off ? .confirmedOff : .failed("power still \(state) 15 s after the off command", atUnixMs: WallClock.nowUnixMs())
            } catch {
                outcome = .failed("\(error)", atUnixMs: WallClock.nowUnixMs())
            }
            attempts.withLock { $0[name] = outcome }
            if case .failed(let problem, _) = outcome {
                logger.error("fencing through the BMC failed; retrying, and the self-fence lease still counts", metadata: [
                    "node.name": "\(name)", "bmc": "\(bmc)", "error": "\(problem)",
                ])
            }
            nudge()
        }
    }

    private func attemptSummary(_ node: String) -> String {
        switch attempts.withLock({ $0[node] }) {
        case .running: return "power-off in progress"
        case .confirmedOff: return "confirmed off"
        case .failed(let problem, _): return problem
        case nil: return "none configured or reported"
        }
    }

    /// One log line per node and problem until the node's status changes; true the first time.
    @discardableResult
    private func report(_ node: String, _ problem: String) -> Bool {
        guard stuckReported.withLock({ $0.insert(node).inserted }) else { return false }
        logger.error("\(problem)", metadata: ["node.name": "\(node)"])
        return true
    }
}
