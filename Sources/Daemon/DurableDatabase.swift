import Foundation
import GRDB

/// How Specola opens every SQLite file it owns: WAL journal, `synchronous=FULL`
/// (a committed transaction survives a crash or power loss), the directory
/// created if missing, and the file's migrations applied.
public enum DurableDatabase {
    public static func open(path: String, migrator: DatabaseMigrator) throws -> DatabaseQueue {
        var config = Configuration()
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        config.busyMode = .timeout(5)
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let queue = try DatabaseQueue(path: path, configuration: config)
        try queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA journal_mode = WAL") }
        try migrator.migrate(queue)
        return queue
    }
}
