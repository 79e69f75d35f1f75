import SpecolaClusterCore
import Foundation
import Logging
import SpecolaProtocol
import Synchronization

/// The leader's HA loop for VMs and pods. Level-triggered like `JobController`:
/// each pass reads a copy of the state, lets the pure `WorkloadPlanner`
/// decide, proposes its decisions one command per workload, and has the
/// instruction hub send the starts and stops agents have not been told yet.
final class WorkloadController: Sendable {
    struct Settings: Sendable {
        /// Longest time between two passes when nothing nudges.
        var interval: Duration = .milliseconds(500)
    }

    let replica: any ClusterLog
    let hub: InstructionHub
    let settings: Settings
    private let logger: Logger
    private let loop: LeaderLoop
    /// Why each workload that should run is not placed (leader-local soft state).
    private let waiting = Mutex<[String: String]>([:])
    /// Called once for each workload the controller puts into `error`.
    private let onError: @Sendable (_ name: String, _ reason: String) -> Void

    init(replica: any ClusterLog, hub: InstructionHub, settings: Settings = .init(), logger: Logger,
         onError: (@Sendable (_ name: String, _ reason: String) -> Void)? = nil) {
        self.replica = replica
        self.hub = hub
        self.settings = settings
        self.logger = logger
        if let onError {
            self.onError = onError
        } else {
            self.onError = { name, reason in Self.onWorkloadError(name: name, reason: reason, logger: logger) }
        }
        loop = LeaderLoop(interval: settings.interval)
    }

    /// The hook for a workload that went to `error` (its limits are spent). The
    /// WorkloadError alert itself comes from the alert rules, which read the phase
    /// from the replicated state (so it survives a leader change); this logs it.
    static func onWorkloadError(name: String, reason: String, logger: Logger) {
        logger.error("HA workload in error; it stays stopped until an operator enables it", metadata: [
            "workload.name": "\(name)", "reason": "\(reason)",
        ])
    }

    /// Asks for a pass soon (an agent reported a workload event, an operator changed one).
    func nudge() { loop.nudge() }

    func waitingReason(_ name: String) -> String? { waiting.withLock { $0[name] } }

    func run() async {
        await loop.run(replica, pass: { leaderSinceUnixMs in
            // A new leader counts every node as just seen; it places nothing until
            // silence could have made a dead node suspect.
            guard WallClock.nowUnixMs() - leaderSinceUnixMs >= replica.thresholds.suspectAfterMs else { return }
            await pass()
        }, stepDown: { waiting.withLock { $0.removeAll() } })
    }

    /// One pass: plan, commit, dispatch.
    func pass() async {
        let (state, status) = await replica.schedulingState()
        let plan = WorkloadPlanner.plan(state: state, status: status)
        waiting.withLock { $0 = plan.waiting }
        let now = WallClock.nowUnixMs()
        for decision in plan.decisions {
            await commit(decision, at: now)
        }
        hub.dispatch(await replica.replicatedState)
    }

    private func commit(_ decision: WorkloadPlanner.Decision, at now: Int64) async {
        let by = WorkloadBook.controller
        let command: Specola_V1_Command
        let name: String
        switch decision {
        case let .place(workload, generation, node, reason, message):
            name = workload
            command = .workload(workload, at: now, by: by, .place(.with {
                $0.generation = generation
                $0.node = node
                $0.reason = reason
                $0.message = message
            }))
        case let .fail(workload, generation, reason):
            name = workload
            command = .workload(workload, at: now, by: by, .fail(.with { $0.generation = generation; $0.reason = reason }))
        case let .release(workload, generation, reason):
            name = workload
            command = .workload(workload, at: now, by: by, .release(.with { $0.generation = generation; $0.reason = reason }))
        case let .evacuate(workload, generation, reason):
            name = workload
            command = .workload(workload, at: now, by: by, .evacuate(.with { $0.generation = generation; $0.reason = reason }))
        }
        do {
            let outcome = try await replica.propose(command)
            if case .rejected(let why) = outcome {
                logger.warning("workload decision refused by the state", metadata: ["workload.name": "\(name)", "reason": "\(why)"])
                return
            }
        } catch {
            logger.warning("workload decision not committed; the next pass decides again", metadata: [
                "workload.name": "\(name)", "error": "\(error)",
            ])
            return
        }
        switch decision {
        case let .place(_, generation, node, reason, message):
            logger.info("workload placed", metadata: [
                "workload.name": "\(name)", "node.name": "\(node)", "workload.generation": "\(generation)",
                "reason": "\(reason)", "message": "\(message)",
            ])
        case let .fail(_, _, reason):
            onError(name, reason)
        case let .release(_, _, reason):
            logger.info("workload released from a fenced node", metadata: ["workload.name": "\(name)", "reason": "\(reason)"])
        case let .evacuate(_, _, reason):
            logger.info("workload stopped to move off a draining node", metadata: ["workload.name": "\(name)", "reason": "\(reason)"])
        }
    }
}
