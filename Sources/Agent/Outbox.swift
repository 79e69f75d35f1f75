import Foundation
import GRDB
import SpecolaProtocol
import SpecolaDaemon

/// The agent's durable queue of reports. A report gets its sequence number
/// here and stays until the coordinator acknowledges it, so nothing is lost
/// while no coordinator answers or when the agent restarts. The same file
/// holds the agent's one instruction ledger (`InstructionLedger.swift`).
public final class Outbox: Sendable {
    let queue: DatabaseQueue
    public let path: String

    public init(path: String) throws {
        self.path = path
        do {
            queue = try DurableDatabase.open(path: path, migrator: Self.migrator)
        } catch {
            throw OutboxError(path: path, problem: "cannot open (\(error)); if the file is corrupted, move it aside — the agent then starts a fresh outbox and sends a full report")
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "report") { t in
                t.primaryKey("seq", .integer)
                t.column("payload", .blob).notNull()
            }
            // The sequence counter outlives the rows, so numbers never repeat.
            try db.create(table: "counter") { t in
                t.primaryKey("name", .text)
                t.column("value", .integer).notNull()
            }
            try db.create(table: "instruction") { t in
                t.primaryKey("id", .text)
                t.column("ok", .boolean).notNull()
                t.column("message", .text).notNull()
            }
        }
        // The task a claimed instruction runs, so an agent that restarts can re-attach to it.
        migrator.registerMigration("v2") { db in
            try db.alter(table: "instruction") { t in
                t.add(column: "finished", .boolean).notNull().defaults(to: true)
                t.add(column: "payload", .blob)
            }
        }
        // Which family of work a claimed entry is (task, workload, storage), so one resume path
        // hands each entry to its runner. Entries of older agents are classified by their ids.
        migrator.registerMigration("v3") { db in
            try db.alter(table: "instruction") { t in t.add(column: "family", .text) }
            let ids = try String.fetchAll(db, sql: "SELECT id FROM instruction WHERE payload IS NOT NULL OR finished = 0")
            for id in ids {
                try db.execute(sql: "UPDATE instruction SET family = ? WHERE id = ?",
                               arguments: [WorkFamily(instructionID: id).rawValue, id])
            }
        }
        return migrator
    }

    /// Stamps the next sequence number on a report and stores it durably.
    public func append(facts: Specola_V1_NodeFacts, full: Bool, collectedAtUnixMs: Int64) throws -> Specola_V1_Report {
        try store {
            $0.full = full
            $0.collectedAtUnixMs = collectedAtUnixMs
            $0.facts = facts
        }
    }

    /// Queues what happened to this node's tasks, in a report of its own.
    public func append(taskEvents: [Specola_V1_TaskEvent], atUnixMs: Int64) throws -> Specola_V1_Report {
        try store {
            $0.collectedAtUnixMs = atUnixMs
            $0.taskEvents = taskEvents
        }
    }

    /// Queues what happened to this node's HA workloads, in a report of its own.
    public func append(workloadEvents: [Specola_V1_WorkloadEvent], atUnixMs: Int64) throws -> Specola_V1_Report {
        try store {
            $0.collectedAtUnixMs = atUnixMs
            $0.workloadEvents = workloadEvents
        }
    }

    private func store(_ fill: (inout Specola_V1_Report) -> Void) throws -> Specola_V1_Report {
        do {
            return try queue.write { db in try Self.insertReport(db, fill) }
        } catch {
            throw OutboxError(path: path, problem: "cannot store a report (\(error)); check free disk space")
        }
    }

    /// Stamps the next sequence number on a report and inserts it, inside the caller's transaction.
    static func insertReport(_ db: Database, _ fill: (inout Specola_V1_Report) -> Void) throws -> Specola_V1_Report {
        let last = try UInt64.fetchOne(db, sql: "SELECT value FROM counter WHERE name = 'seq'") ?? 0
        var report = Specola_V1_Report.with { $0.seq = last + 1 }
        fill(&report)
        try db.execute(sql: "INSERT INTO report(seq, payload) VALUES (?, ?)", arguments: [report.seq, try report.serializedData()])
        try db.execute(sql: "INSERT INTO counter(name, value) VALUES ('seq', ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                       arguments: [report.seq])
        return report
    }

    /// Reports not yet acknowledged with a sequence number above `seq`, oldest first.
    public func pending(after seq: UInt64, limit: Int = 256) throws -> [Specola_V1_Report] {
        try queue.read { db in
            try Data.fetchAll(db, sql: "SELECT payload FROM report WHERE seq > ? ORDER BY seq LIMIT ?", arguments: [seq, limit])
                .map { try Specola_V1_Report(serializedBytes: $0) }
        }
    }

    /// Drops every report the coordinator has made durable.
    public func acknowledge(through seq: UInt64) throws {
        try queue.write { db in try db.execute(sql: "DELETE FROM report WHERE seq <= ?", arguments: [seq]) }
    }

    /// A small durable value kept beside the reports (e.g. the SEL cursor).
    public func counter(_ name: String) throws -> UInt64? {
        try queue.read { db in try UInt64.fetchOne(db, sql: "SELECT value FROM counter WHERE name = ?", arguments: [name]) }
    }

    public func setCounter(_ name: String, _ value: UInt64) throws {
        try queue.write { db in
            try db.execute(sql: "INSERT INTO counter(name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                           arguments: [name, value])
        }
    }

    public func pendingCount() throws -> Int {
        try queue.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM report") ?? 0 }
    }

    public func lastSeq() throws -> UInt64 {
        try queue.read { db in try UInt64.fetchOne(db, sql: "SELECT value FROM counter WHERE name = 'seq'") ?? 0 }
    }
}

/// The outbox database cannot be used.
public struct OutboxError: Error, CustomStringConvertible {
    public var path: String
    public var problem: String
    public var description: String { "agent outbox \(path): \(problem)" }
}
