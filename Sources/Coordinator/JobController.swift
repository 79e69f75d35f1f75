import SpecolaClusterCore
import Foundation
import Logging
import SpecolaJobs
import SpecolaProtocol
import Synchronization

/// The leader's job loop. Level-triggered: each pass reads a copy of the
/// state, plans the runnable tasks with the pure scheduler, commits the
/// placements through Raft in batches, requeues work of nodes that are down,
/// and has the instruction hub send what agents have not been told yet.
/// Passes run on a timer and whenever something nudges the loop.
package final class JobController: Sendable {
    package struct Settings: Sendable {
        /// Longest time between two passes when nothing nudges.
        var interval: Duration = .milliseconds(500)
        /// Placements per Raft entry.
        var batchSize = 4_096
        /// How long a finished job (its logs and step outputs) stays; nil keeps it forever.
        var retention: Duration? = nil
    }

    let replica: any ClusterLog
    let hub: InstructionHub
    let settings: Settings
    private let logger: Logger
    private let loop: LeaderLoop
    /// Why each pending task was not placed in the latest pass (leader-local soft state).
    private let waiting = Mutex<[String: PlacementFailure]>([:])

    package init(replica: any ClusterLog, hub: InstructionHub, settings: Settings = .init(), logger: Logger) {
        self.replica = replica
        self.hub = hub
        self.settings = settings
        self.logger = logger
        loop = LeaderLoop(interval: settings.interval)
    }

    /// Asks for a pass soon (a job was submitted, a task ended, an agent connected).
    func nudge() { loop.nudge() }

    func waitingReason(_ taskID: String) -> PlacementFailure? { waiting.withLock { $0[taskID] } }

    func run() async {
        await loop.run(replica) { _ in await pass() }
    }

    /// One pass; returns how long planning took (the rest is the Raft commit).
    @discardableResult
    package func pass() async -> Duration {
        let now = WallClock.nowUnixMs()
        let clock = ContinuousClock()
        let planStart = clock.now
        // The state copy lives only while planning, so applying the commits below copies nothing.
        let (plan, jobOf, downNodeWork) = await plannedPass(now: now)
        let planTime = clock.now - planStart
        if let plan, !plan.placements.isEmpty {
            await commit(plan.placements, jobOf: jobOf)
        }
        await requeue(downNodeWork, now: now)
        await forgetExpiredJobs(now: now)
        hub.dispatch(await replica.replicatedState)
        return planTime
    }

    /// Finished jobs older than `retention` leave the replicated state (jobs.retention).
    private func forgetExpiredJobs(now: Int64) async {
        guard let retention = settings.retention else { return }
        let cutoff = now - Int64(retention.components.seconds * 1000 + retention.components.attoseconds / 1_000_000_000_000_000)
        guard await replica.replicatedState.jobs.hasJobs(finishedBefore: cutoff) else { return }
        do {
            _ = try await replica.propose(.forgetJobs(finishedBefore: cutoff))
            logger.info("forgot jobs past their retention", metadata: ["jobs.finished.before.unix.ms": "\(cutoff)"])
        } catch {
            logger.warning("expired jobs not forgotten; the next pass tries again", metadata: ["error": "\(error)"])
        }
    }

    private func plannedPass(now: Int64) async -> (Plan?, [String: String], [String: [String]]) {
        let (state, status) = await replica.schedulingState(nowUnixMs: now)
        // Fence before failover: only a node proven to run nothing gives its work up.
        var downNodeWork: [String: [String]] = [:]
        for allocation in state.jobs.allocations.values where state.nodes[allocation.node]?.committed == .fenced {
            downNodeWork[allocation.node, default: []].append(allocation.id)
        }
        let input = SchedulingInput(state: state, status: { status[$0] ?? .down }, nowUnixMs: now)
        let quotaWaits = input.quotaWaits.mapValues { PlacementFailure(.waiting, $0) }
        guard !input.pending.isEmpty else {
            waiting.withLock { $0 = quotaWaits }
            return (nil, [:], downNodeWork)
        }
        let plan = Scheduler.plan(cluster: input.cluster, pending: input.pending, usage: input.usage)
        waiting.withLock { waiting in
            waiting = Dictionary(plan.unplaced.map { ($0.taskID, $0.reason) }, uniquingKeysWith: { first, _ in first })
                .merging(quotaWaits) { placement, _ in placement }
        }
        return (plan, input.jobByTask, downNodeWork)
    }

    private func commit(_ placements: [Placement], jobOf: [String: String]) async {
        let now = WallClock.nowUnixMs()
        let batches = stride(from: 0, to: placements.count, by: settings.batchSize).map {
            Array(placements[$0..<min($0 + settings.batchSize, placements.count)])
        }
        await withTaskGroup(of: Void.self) { group in
            for batch in batches {
                let command = Specola_V1_Command.with {
                    $0.proposedAtUnixMs = now
                    $0.placeTasks.placements = batch.map { placement in
                        .with {
                            $0.jobID = jobOf[placement.taskID] ?? ""
                            $0.taskID = placement.taskID
                            $0.node = placement.node
                            $0.allocationID = Self.newAllocationID(job: $0.jobID)
                        }
                    }
                }
                group.addTask { [replica, logger] in
                    do {
                        _ = try await replica.propose(command)
                    } catch {
                        logger.warning("placements not committed; the next pass plans them again", metadata: [
                            "count": "\(batch.count)", "error": "\(error)",
                        ])
                    }
                }
            }
        }
    }

    private func requeue(_ downNodeWork: [String: [String]], now: Int64) async {
        for (node, ids) in downNodeWork.sorted(by: { $0.key < $1.key }) {
            logger.warning("node is fenced; its work is placed again elsewhere", metadata: [
                "node.name": "\(node)", "allocations": "\(ids.count)",
            ])
            do {
                _ = try await replica.propose(.with {
                    $0.proposedAtUnixMs = now
                    $0.requeueAllocations = .with {
                        $0.allocationIds = ids.sorted()
                        $0.reason = "node \(node) is fenced"
                    }
                })
            } catch {
                logger.warning("requeue not committed; retried next pass", metadata: ["node.name": "\(node)", "error": "\(error)"])
            }
        }
    }

    /// Unique, and usable in a container name: `JOB-` and 12 hex digits.
    static func newAllocationID(job: String) -> String {
        let safe = job.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" }
        let random = UInt64.random(in: 0..<(1 << 48))
        return String(safe.prefix(40)) + "-" + String(random, radix: 16).leftPadded(to: 12)
    }
}

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}

extension SchedulingInput {
    /// The job of each pending task, for the placement commands.
    var jobByTask: [String: String] {
        Dictionary(pending.map { ($0.id, $0.job) }, uniquingKeysWith: { first, _ in first })
    }
}
