import Foundation
import GRDB
import Logging
import SpecolaProtocol
import SpecolaWire

/// The families of long-running work an agent carries out. Tasks and HA workloads share the
/// `WorkRunner`, storage actions have the `StorageRunner`; the ledger records which family a claimed
/// entry belongs to, so a restarted agent hands it back to its runner.
public enum WorkFamily: String, Sendable, CaseIterable {
    /// Batch tasks (`RunTask`): podman containers or exec processes that run to their end.
    case task
    /// HA workloads (`StartWorkload`): VMs and pods that run until stopped.
    case workload
    /// Storage actions (`StorageAction`): gluster CLI work with an outcome.
    case storage

    /// The family of an instruction id, for entries of older agents that recorded none.
    init(instructionID id: String) {
        self = InstructionID.isWorkload(id) ? .workload : InstructionID.isStorageAction(id) ? .storage : .task
    }
}

/// One claimed instruction that was still running when the agent stopped.
public struct LedgerEntry: Sendable, Equatable {
    public var id: String
    /// nil for an entry the ledger cannot place (claimed without a payload by an old agent).
    public var family: WorkFamily?
    /// What the instruction runs (its protobuf), so the runner can re-attach to it.
    public var payload: Data?
}

/// A runner of claimed work, as the agent's one resume path sees it.
public protocol ClaimedWorkRunner: Actor {
    /// The families whose ledger entries it takes.
    nonisolated var families: [WorkFamily] { get }
    /// After an agent restart: re-attach to what still runs, report the rest, close their entries.
    func resume(_ entries: [LedgerEntry]) async
}

/// The agent's instruction ledger, in the outbox's database: every instruction id is claimed
/// here before anything runs (so each runs at most once, across agent crashes too), long-running
/// work keeps its entry open with its payload until it has ended, and a restarted agent resumes
/// from the open entries.
extension Outbox {
    /// Records that instruction `id` starts now, with what it runs. Returns the stored result
    /// instead when it was claimed before, so the caller does not run it again.
    public func claimInstruction(_ id: String, family: WorkFamily? = nil, payload: Data? = nil) throws -> Specola_V1_InstructionResult? {
        try queue.write { db in
            if let row = try Row.fetchOne(db, sql: "SELECT ok, message FROM instruction WHERE id = ?", arguments: [id]) {
                return Specola_V1_InstructionResult.with {
                    $0.instructionID = id
                    $0.ok = row["ok"]
                    $0.message = row["message"]
                    $0.duplicate = true
                }
            }
            try db.execute(sql: "INSERT INTO instruction(id, ok, message, finished, payload, family) VALUES (?, 0, 'started', 0, ?, ?)",
                           arguments: [id, payload, family?.rawValue])
            return nil
        }
    }

    /// Closes instruction `result.instructionID` with its outcome.
    public func recordInstruction(_ result: Specola_V1_InstructionResult) throws {
        try queue.write { db in try Self.close(db, result) }
    }

    /// Closes instruction `result.instructionID` and queues `events` in a report of their own, in one
    /// transaction: a crash leaves either both or neither, so an outcome is never lost nor sent for
    /// an instruction the ledger still counts as running.
    public func recordInstruction(_ result: Specola_V1_InstructionResult, reporting events: [Specola_V1_StorageActionEvent],
                                  atUnixMs: Int64) throws -> Specola_V1_Report {
        do {
            return try queue.write { db in
                try Self.close(db, result)
                return try Self.insertReport(db) {
                    $0.collectedAtUnixMs = atUnixMs
                    $0.storageEvents = events
                }
            }
        } catch {
            throw OutboxError(path: path, problem: "cannot record instruction \(result.instructionID) (\(error)); check free disk space")
        }
    }

    private static func close(_ db: Database, _ result: Specola_V1_InstructionResult) throws {
        try db.execute(sql: "UPDATE instruction SET ok = ?, message = ?, finished = 1 WHERE id = ?",
                       arguments: [result.ok, result.message, result.instructionID])
    }

    /// Whether instruction `id` was claimed and has finished.
    public func instructionFinished(_ id: String) throws -> Bool {
        try queue.read { db in
            try Bool.fetchOne(db, sql: "SELECT finished FROM instruction WHERE id = ?", arguments: [id]) ?? false
        }
    }

    /// Instructions claimed but not finished (the agent stopped while they ran), oldest first.
    public func unfinishedInstructions() throws -> [LedgerEntry] {
        try queue.read { db in
            try Row.fetchAll(db, sql: "SELECT id, payload, family FROM instruction WHERE finished = 0 ORDER BY rowid").map { row in
                LedgerEntry(id: row["id"], family: (row["family"] as String?).flatMap(WorkFamily.init(rawValue:)), payload: row["payload"])
            }
        }
    }
}

extension Specola_V1_Instruction {
    /// The family and ledger payload of an instruction that starts long-running work; nil for one
    /// that is over once executed (stops, collect-now).
    func claimedWork() throws -> (family: WorkFamily, payload: Data)? {
        switch action {
        case .runTask(let run): (.task, try run.withEnvironmentRedacted.serializedData())
        case .startWorkload(let start): (.workload, try start.serializedData())
        case .storageAction(let action): (.storage, try action.serializedData())
        default: nil
        }
    }
}

/// The agent's one resume path, before the link can deliver new work: each runner gets the open
/// ledger entries of its family. Entries no runner takes (a family this agent has turned off)
/// stay open, so turning it back on resumes them.
public func resumeClaimedWork(ledger: Outbox, runners: [any ClaimedWorkRunner], logger: Logger) async {
    let open: [LedgerEntry]
    do {
        open = try ledger.unfinishedInstructions()
    } catch {
        logger.error("cannot read the instruction ledger; work that outlived the previous agent process is not re-attached. Check the agent's dataDir (outbox.sqlite) and restart the agent",
                     metadata: ["outbox": "\(ledger.path)", "error": "\(error)"])
        return
    }
    var byFamily = Dictionary(grouping: open) { $0.family }
    // Stops and collect-now requests are over once executed: one left open was cut short by the crash.
    for entry in byFamily.removeValue(forKey: nil) ?? [] {
        try? ledger.recordInstruction(.with { $0.instructionID = entry.id; $0.ok = false; $0.message = "interrupted by an agent restart" })
    }
    for runner in runners {
        let families = Set(runner.families)
        let entries = open.filter { $0.family.map(families.contains) ?? false }
        for family in families { byFamily.removeValue(forKey: family) }
        if !entries.isEmpty { await runner.resume(entries) }
    }
    for (family, entries) in byFamily {
        logger.warning("work claimed by a previous agent process has no runner here; its ledger entries stay open until one is configured",
                       metadata: ["work.family": "\(family?.rawValue ?? "")", "instruction.ids": "\(entries.map(\.id))"])
    }
}
