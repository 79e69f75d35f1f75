import Foundation
import GRDB
import SpecolaProtocol

/// Durable home of `ClusterState` on one replica: an SQLite file in WAL mode
/// with `synchronous=FULL`, so a record written here survives a crash.
public final class StateStore: Sendable {
    let queue: DatabaseQueue
    public let path: String

    public init(path: String) throws {
        self.path = path
        var config = Configuration()
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        config.busyMode = .timeout(5)
        do {
            try FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            queue = try DatabaseQueue(path: path, configuration: config)
            try queue.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA journal_mode = WAL")
            }
            try Self.migrator.migrate(queue)
            // Fail now, not on first write, if the file is not a usable database.
            _ = try queue.read { db in try db.execute(sql: "PRAGMA quick_check") }
        } catch {
            throw StoreError(path: path, problem: "cannot open the state database (\(error)); if the file is corrupted, move it aside and restore from a snapshot")
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-nodes") { db in
            try db.create(table: "node") { t in
                t.primaryKey("name", .text)
                t.column("record", .blob).notNull()
            }
        }
        return migrator
    }

    public func loadState() throws -> ClusterState {
        try queue.read { db in
            var nodes: [String: Specola_V1_Node] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT name, record FROM node") {
                let data: Data = row["record"]
                nodes[row["name"]] = try Specola_V1_Node(serializedBytes: data)
            }
            return ClusterState(nodes: nodes)
        }
    }

    /// Writes the given node records in one transaction.
    public func save(nodes records: [Specola_V1_Node]) throws {
        do {
            try queue.write { db in
                for record in records {
                    try db.execute(
                        sql: "INSERT INTO node(name, record) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET record = excluded.record",
                        arguments: [record.name, try record.serializedData()])
                }
            }
        } catch {
            throw StoreError(path: path, problem: "write failed (\(error)); check free disk space and the file's permissions")
        }
    }
}

/// The state database cannot be used.
public struct StoreError: Error, CustomStringConvertible {
    public var path: String
    public var problem: String
    public var description: String { "state database \(path): \(problem)" }
}
