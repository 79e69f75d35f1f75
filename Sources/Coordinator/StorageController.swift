import Foundation
import Logging
import SpecolaClusterCore
import SpecolaProtocol
import Synchronization

/// The leader's storage loop. Level-triggered like the other controllers: each pass lets the
/// pure `HealPlanner` decide over a copy of the state, proposes its actions (the state gives
/// each its id and refuses duplicates), and has the instruction hub send pending actions to
/// their nodes. The agents carry them out once and report how they ended through their outbox.
final class StorageController: Sendable {
    let replica: any ClusterLog
    let hub: InstructionHub
    private let planner: Mutex<HealPlanner>
    private let logger: Logger
    private let loop: LeaderLoop
    /// Why the planner leaves each volume alone now (leader-local, for `specola volume show`).
    private let heldBack = Mutex<[String: [String]]>([:])

    init(replica: any ClusterLog, hub: InstructionHub, policy: StoragePolicy, logger: Logger, interval: Duration = .milliseconds(500)) {
        self.replica = replica
        self.hub = hub
        planner = Mutex(HealPlanner(policy: policy))
        self.logger = logger
        loop = LeaderLoop(interval: interval)
    }

    func nudge() { loop.nudge() }

    func run() async {
        await loop.run(replica, pass: { leaderSinceUnixMs in
            // A new leader counts every node as just seen; it waits until silence could show.
            guard WallClock.nowUnixMs() - leaderSinceUnixMs >= replica.thresholds.suspectAfterMs else { return }
            await pass()
        }, stepDown: { heldBack.withLock { $0.removeAll() } })
    }

    func pass() async {
        let now = WallClock.nowUnixMs()
        let (state, status) = await replica.schedulingState(nowUnixMs: now)
        let plan = planner.withLock { $0.onPass(HealPlanner.Input(state: state, status: status, nowUnixMs: now)) }
        let previous = heldBack.withLock { held in
            defer { held = plan.heldBack }
            return held
        }
        for (volume, reasons) in plan.heldBack.sorted(by: { $0.key < $1.key }) {
            for reason in reasons where !(previous[volume] ?? []).contains(reason) {
                logger.notice("storage: heal planner holds back", metadata: ["volume": "\(volume)", "reason": "\(reason)"])
            }
        }
        for directive in plan.directives {
            switch directive {
            case .propose(let action):
                _ = await commit(action, at: now)
            case .abandon(let id, let reason):
                do {
                    _ = try await replica.propose(.storage(abandon: id, reason: reason, atUnixMs: now))
                    logger.warning("storage action abandoned", metadata: ["action.id": "\(id)", "reason": "\(reason)"])
                } catch {
                    logger.warning("storage action not abandoned; the next pass tries again", metadata: ["action.id": "\(id)", "error": "\(error)"])
                }
            }
        }
        hub.dispatch(await replica.replicatedState)
    }

    /// Commits an action; returns its id, or nil when the state refused it or the write failed.
    private func commit(_ action: Specola_V1_StorageAction, at now: Int64) async -> String? {
        do {
            switch try await replica.propose(.storage(add: action, atUnixMs: now)) {
            case .storageAction(let id):
                logger.notice("storage action committed", metadata: [
                    "action.id": "\(id)", "action.kind": "\(action.kind)", "volume": "\(action.volume)", "node.name": "\(action.node)",
                    "brick": "\(action.brick)", "reason": "\(action.reason)",
                ])
                return id
            case .rejected(let why):
                logger.warning("storage action refused by the state", metadata: ["volume": "\(action.volume)", "reason": "\(why)"])
            default:
                break
            }
        } catch {
            logger.warning("storage action not committed; the next pass decides again", metadata: ["volume": "\(action.volume)", "error": "\(error)"])
        }
        return nil
    }

    /// `specola volume heal` and `specola brick replace`: the planner checks, the state commits.
    func operatorRequest(_ request: Specola_V1_StorageRequest, by identity: String) async throws -> Specola_V1_StorageAction {
        let now = WallClock.nowUnixMs()
        let (state, status) = await replica.schedulingState(nowUnixMs: now)
        let input = HealPlanner.Input(state: state, status: status, nowUnixMs: now)
        if request.action == "policy" { return try await setPolicy(request, by: identity, input) }
        let decision = planner.withLock { $0.operatorRequest(request, by: identity, input) }
        let action = try decision.get()
        switch try await replica.propose(.storage(add: action, atUnixMs: now)) {
        case .storageAction(let id):
            logger.notice("storage action requested", metadata: ["action.id": "\(id)", "by": "\(identity)", "reason": "\(action.reason)"])
            hub.dispatch(await replica.replicatedState)
            return await replica.replicatedState.storage.actions[id] ?? action
        case .rejected(let why):
            throw HealPlanner.Refusal(code: .refused, description: why)
        default:
            throw HealPlanner.Refusal(code: .refused, description: "the action was not committed")
        }
    }

    /// `specola volume policy`: committed, then in force from the next pass. Answered with an
    /// action-shaped receipt (kind unspecified) naming the volume; `volume show` shows the policy.
    private func setPolicy(_ request: Specola_V1_StorageRequest, by identity: String, _ input: HealPlanner.Input) async throws -> Specola_V1_StorageAction {
        let policy = try planner.withLock { $0.policyRequest(request, by: identity, input) }.get()
        switch try await replica.propose(.storage(policy: policy, atUnixMs: input.nowUnixMs)) {
        case .rejected(let why):
            throw HealPlanner.Refusal(code: .refused, description: why)
        default:
            logger.notice("storage policy set", metadata: [
                "volume": "\(policy.volume)", "by": "\(identity)", "split_brain": "\(policy.splitBrain)", "priority": "\(policy.priority)",
                "shd_max_threads": "\(policy.shdMaxThreads)", "heal_priority": "\(policy.healPriority)",
            ])
            nudge()
            return .with {
                $0.volume = policy.volume
                $0.requestedBy = identity
                $0.reason = "policy: split-brain \(policy.splitBrain), priority \(policy.priority)"
            }
        }
    }

    /// A volume's actions, newest first, why the planner leaves it alone, and its policy.
    func detail(_ volume: String) async -> Specola_V1_VolumeDetail {
        let storage = await replica.replicatedState.storage
        let policy = planner.withLock { $0.policy }.volume(volume, in: storage).proto(volume: volume)
        return .with {
            $0.name = volume
            $0.actions = storage.ordered.filter { $0.volume == volume }.reversed()
            $0.heldBack = heldBack.withLock { $0[volume] ?? [] }
            $0.policy = policy
        }
    }
}
