import Foundation
import Logging
import SpecolaProtocol

/// Carries out coordinator instructions, each id at most once: the outbox's
/// ledger is claimed before anything runs, and a repeated id gets the stored
/// result instead of a second run.
public struct InstructionExecutor: Sendable {
    let outbox: Outbox
    let runner: WorkRunner
    let storage: StorageRunner?
    let onFullReportRequested: @Sendable () -> Void
    let logger: Logger

    public init(outbox: Outbox, work: WorkRunner, storage: StorageRunner? = nil, logger: Logger,
                onFullReportRequested: @escaping @Sendable () -> Void) {
        self.outbox = outbox
        self.runner = work
        self.storage = storage
        self.logger = logger
        self.onFullReportRequested = onFullReportRequested
    }

    public func execute(_ instruction: Specola_V1_Instruction) async throws -> Specola_V1_InstructionResult {
        let id = instruction.id
        let work = try instruction.claimedWork()
        if let stored = try outbox.claimInstruction(id, family: work?.family, payload: work?.payload) {
            logger.info("instruction already executed; not running it again", metadata: ["instruction.id": "\(id)"])
            return stored
        }
        var result = Specola_V1_InstructionResult.with { $0.instructionID = id; $0.ok = true }
        switch instruction.action {
        case .collectNow:
            onFullReportRequested()
            result.message = "full report scheduled"
        case .runTask(let run):
            // The runner records the final result when the task ends.
            await runner.start(.task(run))
            result.message = "started"
            return result
        case .stopTask(let stop):
            result.message = await runner.stop(stop)
        case .startWorkload(let start):
            // The runner closes the ledger entry when the instance ends.
            await runner.start(.workload(start))
            result.message = "starting"
            return result
        case .stopWorkload(let stop):
            result.message = await runner.stop(stop)
        case .storageAction(let action):
            // The runner closes the ledger entry, with the outcome report, when the action ends.
            if let storage {
                result.message = await storage.start(action)
                return result
            }
            result.ok = false
            result.message = "GlusterFS is turned off on this agent (gluster.enabled: false); the action was not run"
            let event = Specola_V1_StorageActionEvent.with {
                $0.actionID = id
                $0.ok = false
                $0.message = result.message
                $0.atUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
            }
            _ = try outbox.recordInstruction(result, reporting: [event], atUnixMs: event.atUnixMs)
            return result
        case nil:
            result.ok = false
            result.message = "unknown instruction; this agent (\(SpecolaVersion.current)) may be older than the coordinator"
        }
        try outbox.recordInstruction(result)
        return result
    }
}

extension Specola_V1_RunTask {
    /// What the ledger keeps: a restarted agent re-attaches to the container, which already holds
    /// the values, so they are not written to disk again. A value with a line break stays one
    /// (podman took it as a secret, which the re-attached run removes by name).
    var withEnvironmentRedacted: Specola_V1_RunTask {
        var copy = self
        copy.env = env.mapValues { PodmanDriver.needsSecret($0) ? "(redacted)\n" : "(redacted)" }
        return copy
    }
}
