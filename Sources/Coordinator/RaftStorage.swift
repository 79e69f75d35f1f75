import SpecolaClusterCore
import Foundation
import GRDB
import SpecolaProtocol
import SpecolaRaft
import SpecolaDaemon

/// The Raft log, hard state and latest snapshot of one replica, in SQLite
/// with WAL and `synchronous=FULL`: `persist` returns only once the data is on disk.
public final class RaftStorage: Sendable {
    let queue: DatabaseQueue
    public let path: String

    public init(path: String) throws {
        self.path = path
        do {
            queue = try DurableDatabase.open(path: path, migrator: Self.migrator)
            let check = try queue.read { db in try String.fetchOne(db, sql: "PRAGMA quick_check") }
            guard check == "ok" else { throw StoreError(path: path, problem: "integrity check failed: \(check ?? "no answer")") }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(path: path, problem: "cannot open the Raft log (\(error)); if the file is corrupted, do not just delete it (this replica would forget its votes): remove it from the group with `specola members remove ID`, wipe its data dir, start it with `join: true` and add it back — or restore the group from a snapshot")
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-raft") { db in
            try db.create(table: "raft_entry") { t in
                t.primaryKey("idx", .integer)
                t.column("term", .integer).notNull()
                t.column("entry", .blob).notNull()
            }
            try db.create(table: "raft_meta") { t in
                t.primaryKey("name", .text)
                t.column("value", .blob).notNull()
            }
        }
        return migrator
    }

    /// Everything needed to restart the Raft core; nil when this replica has never run.
    public func load() throws -> PersistedState? {
        do {
            return try queue.read { db in
                let hard = try Data.fetchOne(db, sql: "SELECT value FROM raft_meta WHERE name = 'hard'")
                let snap = try Data.fetchOne(db, sql: "SELECT value FROM raft_meta WHERE name = 'snapshot'")
                if hard == nil && snap == nil { return nil }
                let snapshot = try snap.map { try Snapshot(wire: [UInt8]($0)) }
                let after = snapshot?.meta.index ?? 0
                let entries = try Data.fetchAll(db, sql: "SELECT entry FROM raft_entry WHERE idx > ? ORDER BY idx", arguments: [after])
                    .map { try Entry(wire: [UInt8]($0)) }
                return PersistedState(
                    hardState: try hard.map { try HardState(wire: [UInt8]($0)) } ?? HardState(),
                    snapshot: snapshot, entries: entries)
            }
        } catch {
            throw StoreError(path: path, problem: "the Raft log cannot be read (\(error)); remove this replica from the group (`specola members remove ID`), wipe its data dir and re-add it with `join: true`")
        }
    }

    /// Persists what a `Ready` asks for, in one transaction, before any message is sent.
    /// A snapshot here was installed from the leader: the core dropped its whole log for it,
    /// so every stored entry goes too (any that follow arrive in `entries`). Leaving those
    /// after the snapshot would restart the replica with entries that belong to no leader's log.
    public func persist(hardState: HardState?, entries: [Entry], snapshot: Snapshot?) throws {
        try write { db in try Self.store(hardState: hardState, entries: entries, snapshot: snapshot, db) }
    }

    /// One part of a group commit.
    public enum LogWrite {
        /// A Ready's hard state and entries, or a leader's snapshot that replaces the whole log.
        case ready(hardState: HardState?, entries: [Entry], snapshot: Snapshot?)
        /// A snapshot this replica took itself: it replaces only the entries it covers.
        case compaction(Snapshot)
    }

    /// Persists several parts, in the order handed in, in one transaction: one fsync for all (group commit).
    public func persist(_ writes: [LogWrite]) throws {
        try write { db in
            for part in writes {
                switch part {
                case .ready(let hardState, let entries, let snapshot):
                    try Self.store(hardState: hardState, entries: entries, snapshot: snapshot, db)
                case .compaction(let snapshot):
                    try Self.storeCompaction(snapshot, db)
                }
            }
        }
    }

    private static func store(hardState: HardState?, entries: [Entry], snapshot: Snapshot?, _ db: Database) throws {
        // Cached statements: this runs once per Ready, so compiling SQL each time shows up.
        if let snapshot {
            try storeSnapshot(snapshot, db)
            try db.cachedStatement(sql: "DELETE FROM raft_entry").execute()
        }
        if let first = entries.first {
            // A new entry at an index replaces that index and everything after it.
            try db.cachedStatement(sql: "DELETE FROM raft_entry WHERE idx >= ?").execute(arguments: [first.index])
            let insert = try db.cachedStatement(sql: "INSERT INTO raft_entry(idx, term, entry) VALUES (?, ?, ?)")
            for entry in entries {
                try insert.execute(arguments: [entry.index, entry.term, Data(entry.wireBytes())])
            }
        }
        if let hardState {
            try db.cachedStatement(sql: "INSERT OR REPLACE INTO raft_meta(name, value) VALUES ('hard', ?)")
                .execute(arguments: [Data(hardState.wireBytes())])
        }
    }

    /// Stores a snapshot taken locally and drops only the log it covers.
    public func compact(to snapshot: Snapshot) throws {
        try write { db in try Self.storeCompaction(snapshot, db) }
    }

    private static func storeCompaction(_ snapshot: Snapshot, _ db: Database) throws {
        try storeSnapshot(snapshot, db)
        try db.cachedStatement(sql: "DELETE FROM raft_entry WHERE idx <= ?").execute(arguments: [snapshot.meta.index])
    }

    private static func storeSnapshot(_ snapshot: Snapshot, _ db: Database) throws {
        try db.cachedStatement(sql: "INSERT OR REPLACE INTO raft_meta(name, value) VALUES ('snapshot', ?)")
            .execute(arguments: [Data(snapshot.wireBytes())])
    }

    /// One durable transaction, with errors an operator can act on. BEGIN and COMMIT are cached
    /// statements: GRDB's own transaction wrapper compiles both anew each time, which cost
    /// more CPU than storing a Ready's entries.
    private func write(_ body: (Database) throws -> Void) throws {
        do {
            try queue.writeWithoutTransaction { db in
                try db.cachedStatement(sql: "BEGIN IMMEDIATE TRANSACTION").execute()
                do {
                    try body(db)
                    try db.cachedStatement(sql: "COMMIT TRANSACTION").execute()
                } catch {
                    if db.isInsideTransaction { try? db.execute(sql: "ROLLBACK TRANSACTION") }
                    throw error
                }
            }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_FULL {
            let directory = (path as NSString).deletingLastPathComponent
            throw StoreError(path: path, problem: "the disk is full, so the Raft log cannot grow (\(error)); free space in \(directory), then restart this coordinator: it catches up from the others, which keep serving")
        } catch {
            throw StoreError(path: path, problem: "cannot persist the Raft log (\(error)); check free disk space and the disk's health, then restart this coordinator")
        }
    }
}

/// A replica's database cannot be used.
public struct StoreError: Error, CustomStringConvertible {
    public var path: String
    public var problem: String
    public var description: String { "database \(path): \(problem)" }
}
