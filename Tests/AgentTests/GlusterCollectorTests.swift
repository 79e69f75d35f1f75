import Foundation
import Logging
import SpecolaProtocol
import TestSupport
import Testing

@testable import SpecolaAgent
import CooperativePoolWatch

@Suite(.runsOffThePool, .watchesCooperativePool) struct GlusterCollectorTests {
    static func collector(_ command: [String], timeout: Duration = .seconds(5), logger: Logger = Logger(label: "test.gluster")) -> GlusterCollector {
        var settings = GlusterCollector.Settings()
        settings.command = command
        settings.timeout = timeout
        return GlusterCollector(settings: settings, logger: logger)
    }

    @Test func aNodeWithoutTheGlusterCLIReportsNoGlusterFSOnceInTheLog() async throws {
        let records = RecordedLogs()
        let logger = Logger(label: "test.gluster") { _ in RecordingLogHandler(records: records, lowestLevel: .info) }
        let collector = Self.collector(["/nonexistent/gluster"], logger: logger)
        for _ in 0..<3 {
            let section = await collector.collect()
            #expect(!section.available)
            #expect(section.unavailableCause == .notInstalled)
            #expect(section.reason == "no GlusterFS: /nonexistent/gluster not found")
            #expect(section.volumes.isEmpty)
        }
        #expect(records.messages == ["no GlusterFS on this node"])
    }

    @Test func aGlusterdThatDoesNotAnswerIsReportedWithWhatToDo() async throws {
        // The real CLI in an empty network namespace, where no glusterd listens. It answers in
        // a tenth of a second; the long limit only keeps a loaded machine from reading as wedged.
        let collector = Self.collector(["unshare", "-n", "gluster"], timeout: .seconds(60))
        let section = await collector.collect()
        #expect(!section.available)
        #expect(section.unavailableCause == .glusterdNotRunning, "\(section.reason)")
        #expect(section.reason.contains("systemctl start glusterd"), "\(section.reason)")
    }

    @Test func aHangingCLIIsStoppedAtTheTimeLimit() async throws {
        // A stand-in for a wedged glusterd: the "CLI" never answers.
        let collector = Self.collector(["sh", "-c", "sleep 30", "gluster"], timeout: .milliseconds(300))
        let started = ContinuousClock.now
        let section = await collector.collect()
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(!section.available)
        #expect(section.unavailableCause == .timedOut)
        #expect(section.reason.contains("did not finish within"), "\(section.reason)")
    }

    @Test func concurrentCollectsShareOneRunOfTheCLI() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let calls = dir.file("calls")
        let collector = Self.collector(["sh", "-c", "echo call >> \(calls); sleep 0.5; exit 3", "gluster"])
        async let first = collector.collect()
        async let second = collector.collect()
        async let third = collector.collect()
        let sections = await [first, second, third]
        #expect(sections.allSatisfy { !$0.available && $0.unavailableCause == .cliFailed })
        let lines = try String(contentsOfFile: calls, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 1)
    }

    /// Within `interval` the last read is reported again without the CLI; a local brick whose
    /// process left /proc is reported offline at once, without waiting for the CLI, and the
    /// collection after that reads it again, as after a `refresh()`.
    @Test func theCLIIsReadOncePerIntervalUnlessALocalBrickDiedOrARefreshIsAsked() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let calls = dir.file("calls")
        // A /proc holding the process of 10.77.14.1's gv0 brick (pid 30453 in the status fixture).
        let proc = dir.file("proc")
        try FileManager.default.createDirectory(atPath: proc + "/30453", withIntermediateDirectories: true)
        try "30453 (glusterfsd) S 1 30453".write(toFile: proc + "/30453/stat", atomically: true, encoding: .utf8)
        var settings = GlusterCollector.Settings()
        settings.command = Self.healthyCLI(loggingCallsTo: calls)
        settings.brickHost = "10.77.14.1"
        settings.procRoot = proc
        settings.interval = .seconds(600)
        let collector = GlusterCollector(settings: settings, logger: Logger(label: "test.gluster"))
        func callCount() throws -> Int { try String(contentsOfFile: calls, encoding: .utf8).split(separator: "\n").count }

        let first = await collector.collect()
        let brick = first.volumes.first { $0.name == "gv0" }?.bricks.first { $0.local }
        #expect(brick?.online == true && brick?.pid == 30453, "\(first)")
        let read = try callCount()
        #expect(read > 0)
        #expect(await collector.collect() == first)
        #expect(try callCount() == read, "a second report within the interval ran the CLI")

        #expect(!collector.readIsDue())
        try FileManager.default.removeItem(atPath: proc + "/30453")
        #expect(collector.readIsDue(), "the agent would not cut its report interval short for a dead brick")
        let atDeath = await collector.collect()
        let dead = atDeath.volumes.first { $0.name == "gv0" }?.bricks.first { $0.local }
        #expect(dead?.online == false && dead?.pid == 30453, "the dead brick must be reported offline at once: \(atDeath)")
        #expect(try callCount() == read, "the first report of a dead brick waits for no CLI")
        #expect(collector.readIsDue(), "gluster's view of the dead brick must follow at once")
        _ = await collector.collect()
        let afterDeath = try callCount()
        #expect(afterDeath > read, "the local brick's process is gone, yet the CLI was not read again")

        _ = await collector.collect()
        #expect(try callCount() == afterDeath,
                "gluster says a brick runs whose pid /proc does not show (another pid namespace): /proc must not overrule it")
        try FileManager.default.createDirectory(atPath: proc + "/30453", withIntermediateDirectories: true)
        try "30453 (glusterfsd) S 1 30453".write(toFile: proc + "/30453/stat", atomically: true, encoding: .utf8)
        _ = await collector.collect()
        let steady = try callCount()
        _ = await collector.collect()
        #expect(try callCount() == steady)
        collector.refresh()
        #expect(collector.readIsDue())
        _ = await collector.collect()
        #expect(try callCount() > steady, "refresh() did not make the next collection read the CLI")
    }
}

extension GlusterCollectorTests {
    /// A gluster CLI answering from the healthy gv0 fixtures, appending each call's arguments to `calls`.
    static func healthyCLI(loggingCallsTo calls: String) -> [String] {
        let xml = GlusterXMLTests.fixtures.path
        let script = """
            echo "$*" >> \(calls)
            case "$2 $3" in
              "pool list") cat \(xml)/pool-list.xml ;;
              "volume info") cat \(xml)/volume-info.xml ;;
              "volume status") cat \(xml)/status-gv0-healthy.xml ;;
              "volume get") cat \(xml)/get-gv0-all.xml ;;
              "volume heal") cat \(xml)/heal-healthy.xml ;;
              *) exit 1 ;;
            esac
            """
        return ["sh", "-c", script, "gluster"]
    }

    /// A heal summary crawls every brick of the volume, so only nodes holding one of its bricks run it.
    @Test func onlyANodeHoldingABrickOfTheVolumeCountsItsHeals() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        func healSummaries(brickHost: String) async throws -> (runs: Int, counted: Bool) {
            let calls = dir.file("calls-\(brickHost)")
            var settings = GlusterCollector.Settings()
            settings.command = Self.healthyCLI(loggingCallsTo: calls)
            settings.brickHost = brickHost
            let section = await GlusterCollector(settings: settings, logger: Logger(label: "test.gluster")).collect()
            let runs = try String(contentsOfFile: calls, encoding: .utf8).split(separator: "\n").filter { $0.contains("heal") }.count
            let gv0 = section.volumes.first { $0.name == "gv0" }
            return (runs, gv0?.bricks.contains { $0.hasHealPending } ?? false)
        }
        let holder = try await healSummaries(brickHost: "10.77.14.1")
        #expect(holder.runs > 0 && holder.counted, "the node with a gv0 brick did not count its heals")
        let bystander = try await healSummaries(brickHost: "10.77.14.99")
        #expect(bystander.runs == 0 && !bystander.counted, "a node without a brick ran \(bystander.runs) heal summaries")
    }
}

@Suite(.watchesCooperativePool) struct BrickFilesystemTests {
    /// A /sys with a partitioned disk (sda, sda1), a device-mapper volume over two disks
    /// (dm-0 over sdb and sdc) and a loop device.
    static func fakeSys(in dir: TempDir) throws -> String {
        let sys = dir.file("sys")
        let fm = FileManager.default
        func mkdir(_ path: String) throws { try fm.createDirectory(atPath: sys + "/" + path, withIntermediateDirectories: true) }
        func link(_ path: String, to target: String) throws { try fm.createSymbolicLink(atPath: sys + "/" + path, withDestinationPath: sys + "/" + target) }
        for disk in ["sda", "sdb", "sdc"] { try mkdir("devices/pci/block/\(disk)") }
        try mkdir("devices/pci/block/sda/sda1")
        fm.createFile(atPath: sys + "/devices/pci/block/sda/sda1/partition", contents: Data("1\n".utf8))
        try mkdir("devices/virtual/block/dm-0/slaves")
        try mkdir("block")
        try mkdir("class/block")
        try mkdir("dev/block")
        for disk in ["sda", "sdb", "sdc"] {
            try link("block/\(disk)", to: "devices/pci/block/\(disk)")
            try link("class/block/\(disk)", to: "devices/pci/block/\(disk)")
        }
        try link("class/block/sda1", to: "devices/pci/block/sda/sda1")
        try link("block/dm-0", to: "devices/virtual/block/dm-0")
        try link("class/block/dm-0", to: "devices/virtual/block/dm-0")
        for slave in ["sdb", "sdc"] { try link("devices/virtual/block/dm-0/slaves/\(slave)", to: "devices/pci/block/\(slave)") }
        try link("dev/block/8:1", to: "devices/pci/block/sda/sda1")
        try link("dev/block/254:0", to: "devices/virtual/block/dm-0")
        return sys
    }

    static let mountInfo = """
        22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
        30 22 254:0 / /srv/bricks rw,noatime shared:2 - xfs /dev/mapper/vg-bricks rw,attr2
        31 30 0:45 / /srv/bricks/tmp rw shared:3 - tmpfs tmpfs rw
        40 22 0:50 / /srv/with\\040space rw - ext4 /dev/sda1 rw
        """

    @Test func aBrickOnAPartitionBelongsToItsDisk() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let sys = try Self.fakeSys(in: dir)
        let entries = BrickFilesystem.parseMountInfo(Self.mountInfo)
        #expect(entries.count == 4)
        let fs = try #require(BrickFilesystem.containing("/data/gv0/brick", mountInfo: entries, sysRoot: sys))
        #expect(fs == BrickFilesystem(mountPoint: "/", device: "/dev/sda1", fsType: "ext4", disks: ["sda"]))
    }

    @Test func aBrickOnDeviceMapperBelongsToEveryDiskBeneath() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let sys = try Self.fakeSys(in: dir)
        let entries = BrickFilesystem.parseMountInfo(Self.mountInfo)
        let fs = try #require(BrickFilesystem.containing("/srv/bricks/gv0", mountInfo: entries, sysRoot: sys))
        #expect(fs == BrickFilesystem(mountPoint: "/srv/bricks", device: "/dev/mapper/vg-bricks", fsType: "xfs", disks: ["sdb", "sdc"]))
        // A mount point is matched by whole path components only.
        let sibling = try #require(BrickFilesystem.containing("/srv/bricksX/gv0", mountInfo: entries, sysRoot: sys))
        #expect(sibling.mountPoint == "/")
    }

    @Test func aMemoryFilesystemHasNoDisk() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let sys = try Self.fakeSys(in: dir)
        let entries = BrickFilesystem.parseMountInfo(Self.mountInfo)
        let fs = try #require(BrickFilesystem.containing("/srv/bricks/tmp/b", mountInfo: entries, sysRoot: sys))
        #expect(fs.fsType == "tmpfs" && fs.disks.isEmpty)
        // Escaped mount points; a device number without a /sys entry falls back to the source.
        let spaced = try #require(BrickFilesystem.containing("/srv/with space/b", mountInfo: entries, sysRoot: sys))
        #expect(spaced.mountPoint == "/srv/with space")
    }

    @Test func thisMachinesRootFilesystemMapsToADiskTheStorageCollectorReports() throws {
        let text = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        let fs = try #require(BrickFilesystem.containing("/tmp", mountInfo: BrickFilesystem.parseMountInfo(text), sysRoot: "/sys"))
        let disks = StorageCollector(logger: Logger(label: "test")).collect().disks.map(\.name)
        // /tmp may be a tmpfs or an overlay (no disk); when it has disks they are whole disks.
        #expect(fs.disks.allSatisfy { disks.contains($0) }, "\(fs) vs \(disks)")
    }
}
