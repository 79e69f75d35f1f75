import CPowerLossVFS
import Foundation
import GRDB

/// How Specola opens every SQLite file it owns: WAL journal, `synchronous=FULL`
/// (a committed transaction survives a crash or power loss), the directory
/// created if missing, and the file's migrations applied.
public enum DurableDatabase {
    public static func open(path: String, migrator: DatabaseMigrator) throws -> DatabaseQueue {
        let synchronous = testSwitches.synchronousOff ? "OFF" : "FULL"
        var config = Configuration()
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = \(synchronous)") }
        config.busyMode = .timeout(5)
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let queue = try DatabaseQueue(path: path, configuration: config)
        try queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA journal_mode = WAL") }
        try migrator.migrate(queue)
        return queue
    }

    /// Switches for tests and measurements, never for a real deployment, read once per process:
    /// - `SPECOLA_TEST_POWER_LOSS_VFS=1`: every database of this process keeps unsynced writes in
    ///   memory until SQLite syncs them, so kill -9 loses what a power cut would (see PowerLossVFS.h).
    /// - `SPECOLA_TEST_SYNCHRONOUS_OFF=1`: `synchronous=OFF`, so nothing is ever synced; a
    ///   crash can lose acknowledged writes. Proves that the power-loss test can fail, and
    ///   separates disk from CPU in a benchmark.
    public struct TestSwitches: Sendable {
        public var powerLossVFS: Bool
        public var synchronousOff: Bool
    }

    public static let testSwitches: TestSwitches = {
        let environment = ProcessInfo.processInfo.environment
        let switches = TestSwitches(
            powerLossVFS: environment["SPECOLA_TEST_POWER_LOSS_VFS"] == "1",
            synchronousOff: environment["SPECOLA_TEST_SYNCHRONOUS_OFF"] == "1")
        if switches.powerLossVFS {
            let result = specola_power_loss_vfs_register(1)
            guard result == 0 else { fatalError("SPECOLA_TEST_POWER_LOSS_VFS=1: cannot register the power-loss VFS (SQLite error \(result))") }
            FileHandle.standardError.write(Data("TEST MODE: SPECOLA_TEST_POWER_LOSS_VFS=1, unsynced SQLite writes stay in memory until synced\n".utf8))
        }
        if switches.synchronousOff {
            FileHandle.standardError.write(Data("UNSAFE TEST MODE: SPECOLA_TEST_SYNCHRONOUS_OFF=1, SQLite never syncs; a crash can lose acknowledged writes\n".utf8))
        }
        return switches
    }()
}
