import Foundation
import Logging
import SpecolaAlerting
import SpecolaBMC
import SpecolaClusterCore
import SpecolaProtocol
import Synchronization
import SpecolaProcesses

/// Chassis power control of one node's BMC; `BMCPower` over IPMI in production.
protocol NodePowerControl: Sendable {
    /// Powers off and returns once the BMC reads back "off", or throws.
    func powerOffConfirmed(_ bmc: HostPort) async throws
    func powerOn(_ bmc: HostPort) async throws
}

/// IPMI over LAN with the configured credentials. FreeIPMI blocks for a round trip (seconds
/// against a slow BMC), so every call runs on a thread of its own, never on the concurrency pool.
struct IPMIPowerControl: NodePowerControl {
    var access: FencingConfig.BMCAccess
    /// How long the chassis may take to report "off" after the command.
    var confirmWithin: Duration = .seconds(15)

    private func bmc(_ address: HostPort) -> BMCPower {
        BMCPower(host: address.host, port: address.port, user: access.user, password: access.password,
                 timeout: .milliseconds(Int64(access.timeout * 1000)))
    }

    func powerOffConfirmed(_ address: HostPort) async throws {
        let bmc = bmc(address)
        try await onDedicatedThread("specola-fence") { try bmc.powerOff() }
        // Proof is the power state read back, not the accepted command. A BMC has no way
        // to notify, so it is asked again until it says off or the bound passes.
        let deadline = ContinuousClock.now + confirmWithin
        var state = try await onDedicatedThread("specola-fence") { try bmc.powerStatus() }
        while state != .off && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(250))
            state = try await onDedicatedThread("specola-fence") { try bmc.powerStatus() }
        }
        guard state == .off else { throw BMCError("power still \(state) \(confirmWithin) after the off command") }
    }

    func powerOn(_ address: HostPort) async throws {
        let bmc = bmc(address)
        try await onDedicatedThread("specola-bmc") { try bmc.powerOn() }
    }
}

/// Carries out the failure ladder's directives on the leader: commits steps, powers nodes off
/// and on through their BMCs, raises alerts, takes nodes out of service. Every decision is in
/// `FailureLadder`; this only executes and reports back.
final class HealthController: Sendable {
    let replica: any ClusterLog
    private let ladder: Mutex<FailureLadder>
    private let power: (any NodePowerControl)?
    private let logger: Logger
    private let loop: LeaderLoop
    /// Called after each committed step (the job controller moves work of fenced nodes).
    let onTransition: @Sendable () -> Void
    /// Where FencingStuck goes.
    let alerts: AlertController?

    init(replica: any ClusterLog, settings: FailureLadder.Settings, power: (any NodePowerControl)?, logger: Logger,
         interval: Duration = .milliseconds(250), alerts: AlertController? = nil, onTransition: @escaping @Sendable () -> Void) {
        self.replica = replica
        var settings = settings
        settings.bmcCredentials = settings.bmcCredentials && power != nil
        ladder = Mutex(FailureLadder(settings: settings))
        self.power = power
        self.logger = logger
        self.alerts = alerts
        self.onTransition = onTransition
        loop = LeaderLoop(interval: interval)
    }

    var policy: NodeHealth.Policy { ladder.withLock { $0.settings.policy } }

    func nudge() { loop.nudge() }

    func run() async {
        await loop.run(replica) { since in
            // Grace after a leader change: every live agent reconnects before anyone is suspected.
            guard WallClock.nowUnixMs() - since >= policy.suspectAfterMs else { return }
            await pass(leaderSinceUnixMs: since)
        }
    }

    func pass(leaderSinceUnixMs: Int64) async {
        let now = WallClock.nowUnixMs()
        let (state, lastContact) = await replica.healthView()
        let sources = StorageView.soleHealSources(state.nodes)
        let views = state.nodes.values.map {
            FailureLadder.NodeView(node: $0, lastContactUnixMs: lastContact[$0.name] ?? 0, soleHealSource: sources[$0.name])
        }
        let directives = ladder.withLock { $0.onPass(views, leaderSinceUnixMs: leaderSinceUnixMs, nowUnixMs: now) }
        await execute(directives)
    }

    /// `specola node fence|unfence`: the ladder decides (the brake applies unless `force`).
    func operatorRequest(fence: Bool, node: String, by identity: String, force: Bool) async throws(FailureLadder.FenceRefusal) {
        let state = await replica.replicatedState
        let nodes = Array(state.nodes.values)
        let sources = StorageView.soleHealSources(state.nodes)
        let decision = ladder.withLock { ladder in
            fence ? ladder.operatorFence(node, nodes: nodes, by: identity, force: force, soleHealSources: sources)
                : ladder.operatorUnfence(node, nodes: nodes, by: identity)
        }
        await execute(try decision.get())
    }

    private func execute(_ directives: [HealthDirective]) async {
        for directive in directives {
            switch directive {
            case .commit(let node, let status, let reason, let requestedBy):
                await commit(node, status, reason, requestedBy: requestedBy)
            case .powerOff(let node, let bmc):
                startPowerOff(node, bmc: bmc)
            case .powerOn(let node, let bmc):
                do {
                    try await power?.powerOn(bmc)
                } catch {
                    logger.warning("unfence: power on through the BMC failed; power the node on by hand", metadata: [
                        "node.name": "\(node)", "bmc": "\(bmc)", "error": "\(error)",
                    ])
                }
            case .takeOutOfService(let node, let drain, let reason):
                await takeOutOfService(node, drain: drain, reason: reason)
            case .raise(let alert):
                alerts?.raise(alert.fire(atUnixMs: WallClock.nowUnixMs()))
                alerts?.nudge()
            case .resolve(let alert):
                alerts?.raise(alert.resolve(atUnixMs: WallClock.nowUnixMs()))
                alerts?.nudge()
            case .report(let node, let severity, let message):
                logger.log(level: severity == .error ? .error : .warning, "\(message)", metadata: ["node.name": "\(node)"])
            }
        }
    }

    private func commit(_ node: String, _ status: NodeStatus, _ reason: String, requestedBy: String) async {
        do {
            _ = try await replica.propose(.nodeHealth(node: node, status: status, reason: reason, requestedBy: requestedBy))
        } catch {
            logger.warning("node status change not committed; retried next pass", metadata: [
                "node.name": "\(node)", "node.status": "\(status.word)", "error": "\(error)",
            ])
            return
        }
        let level: Logger.Level = [.down, .fencing, .fenced].contains(status) ? .warning : .info
        logger.log(level: level, "node status changed", metadata: ["node.name": "\(node)", "node.status": "\(status.word)", "reason": "\(reason)"])
        let followUp = ladder.withLock { $0.onCommitted(node: node, status: status, nowUnixMs: WallClock.nowUnixMs()) }
        await execute(followUp)
        onTransition()
    }

    private func takeOutOfService(_ node: String, drain: Bool, reason: String) async {
        do {
            _ = try await replica.propose(.nodeScheduling(node: node, cordoned: true, draining: drain))
            logger.warning("early warning: node taken out of service before it fails", metadata: [
                "node.name": "\(node)", "action": "\(drain ? "drain" : "cordon")", "reason": "\(reason)",
            ])
            onTransition()
        } catch {
            logger.warning("early-warning cordon not committed; retried next pass", metadata: ["node.name": "\(node)", "error": "\(error)"])
        }
    }

    /// The ladder allows one attempt per node at a time; its result comes back as a report.
    private func startPowerOff(_ node: String, bmc: HostPort) {
        guard let power else { return }
        logger.warning("fencing: powering the node off through its BMC", metadata: ["node.name": "\(node)", "bmc": "\(bmc)"])
        Task { [self] in
            let outcome: FailureLadder.PowerOffOutcome
            do {
                try await power.powerOffConfirmed(bmc)
                outcome = .confirmedOff
            } catch {
                outcome = .failed("\(error)")
            }
            let followUp = ladder.withLock { $0.onPowerOffResult(node: node, outcome, nowUnixMs: WallClock.nowUnixMs()) }
            await execute(followUp)
            nudge()
        }
    }
}
