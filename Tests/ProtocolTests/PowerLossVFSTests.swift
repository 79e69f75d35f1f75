import CPowerLossVFS
import CooperativePoolWatch
import Foundation
import GRDBSQLite
import Testing

/// The power-loss VFS's contract: a write reaches the disk only when SQLite syncs the
/// file, so the files on disk are what a power cut would leave.
@Suite(.runsOffThePool, .watchesCooperativePool) struct PowerLossVFSTests {
    @Test func onlySyncedWritesReachTheDisk() async throws {
        #expect(specola_power_loss_vfs_register(0) == SQLITE_OK)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("specola-vfs-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/live.sqlite"
        var db: OpaquePointer?
        #expect(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, SPECOLA_POWER_LOSS_VFS_NAME) == SQLITE_OK)
        defer { sqlite3_close(db) }
        func execute(_ sql: String) throws {
            let rc = sqlite3_exec(db, sql, nil, nil, nil)
            try #require(rc == SQLITE_OK, "\(sql): \(String(cString: sqlite3_errmsg(db)))")
        }
        // As DurableDatabase does: the switch to WAL is synced, so the file's header is on disk.
        try execute("PRAGMA synchronous = FULL")
        try execute("PRAGMA journal_mode = WAL")
        try execute("PRAGMA synchronous = OFF")
        try execute("CREATE TABLE t(v BLOB)")
        try execute("INSERT INTO t VALUES (randomblob(20000))")

        // Never synced: the connection sees the row, the disk holds nothing, as after a power cut.
        #expect(try Self.rows(in: db) == 1)
        #expect(specola_power_loss_vfs_unsynced_bytes() >= 20000)
        #expect(try Self.size(path) > 0 && Self.size(path + "-wal") == 0)
        #expect(try Self.rowsOnDisk(copying: path, to: dir + "/cut1") == nil)

        // A commit with synchronous=FULL syncs the WAL: what a power cut leaves now holds both rows.
        try execute("PRAGMA synchronous = FULL")
        try execute("INSERT INTO t VALUES (randomblob(20000))")
        #expect(try Self.size(path + "-wal") > 40000)
        #expect(try Self.rowsOnDisk(copying: path, to: dir + "/cut2") == 2)
        #expect(try Self.rows(in: db) == 2)
    }

    static func size(_ path: String) throws -> Int {
        guard FileManager.default.fileExists(atPath: path) else { return 0 }
        return try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? 0
    }

    static func rows(in db: OpaquePointer?) throws -> Int? {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &statement, nil) == SQLITE_OK else { return nil }
        defer { sqlite3_finalize(statement) }
        guard sqlite3_step(statement) == SQLITE_ROW else { return nil }
        return Int(sqlite3_column_int64(statement, 0))
    }

    /// Copies the database and its WAL as they are on disk and counts the rows there with the
    /// ordinary VFS: nil when the table does not exist.
    static func rowsOnDisk(copying path: String, to directory: String) throws -> Int? {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let copy = directory + "/copy.sqlite"
        for suffix in ["", "-wal"] where FileManager.default.fileExists(atPath: path + suffix) {
            try FileManager.default.copyItem(atPath: path + suffix, toPath: copy + suffix)
        }
        var db: OpaquePointer?
        guard sqlite3_open_v2(copy, &db, SQLITE_OPEN_READWRITE, "unix") == SQLITE_OK else { return nil }
        defer { sqlite3_close(db) }
        return try rows(in: db)
    }
}
