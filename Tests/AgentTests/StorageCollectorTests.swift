import Foundation
import Logging
import SpecolaProcesses
import TestSupport
import Testing

@testable import SpecolaAgent
import CooperativePoolWatch

@Suite(.runsOffThePool, .watchesCooperativePool) struct StorageCollectorTests {
    @Test func realMachineHasADiskAndARootFilesystem() throws {
        let section = StorageCollector(logger: Logger(label: "test.storage")).collect()
        #expect(!section.disks.isEmpty)
        #expect(section.disks.allSatisfy { $0.sizeBytes > 0 && !$0.name.hasPrefix("ram") })
        #expect(section.disks.allSatisfy { ["passed", "failed", "unavailable"].contains($0.smartStatus) })
        let root = try #require(section.filesystems.first { $0.mountPoint == "/" })
        #expect(root.sizeBytes > 0)
        #expect(root.availableBytes <= root.sizeBytes)
        #expect(!section.filesystems.contains { ["proc", "sysfs", "cgroup", "cgroup2", "devpts"].contains($0.fsType) })
    }

    @Test func parsesAFakeProcAndSys() throws {
        let fake = try FakeHost()
        defer { fake.remove() }
        let section = StorageCollector(
            logger: Logger(label: "test.storage"), procRoot: fake.proc, sysRoot: fake.sys,
            smartctlPath: "/nonexistent/smartctl"
        ).collect()

        #expect(section.disks.map(\.name) == ["sda", "vdb"])
        let sda = try #require(section.disks.first)
        #expect(sda.sizeBytes == 2_000_000 * 512)
        #expect(sda.rotational)
        #expect(sda.model == "FAKE DISK")
        #expect(sda.serial == "SN123")
        #expect(sda.readsCompleted == 100)
        #expect(sda.sectorsRead == 300)
        #expect(sda.writesCompleted == 500)
        #expect(sda.sectorsWritten == 700)
        #expect(sda.ioInProgress == 2)
        #expect(sda.smartStatus == "unavailable")
        #expect(sda.smartDetail.contains("not found"))
        let vdb = section.disks[1]
        #expect(!vdb.rotational)
        #expect(vdb.serial == "virtio-7")

        #expect(section.filesystems.map(\.mountPoint) == [fake.data, fake.spaced])
        #expect(section.filesystems.map(\.device) == ["/dev/sda1", "/dev/vdb"])
        #expect(section.filesystems.allSatisfy { $0.sizeBytes > 0 && $0.files > 0 })
    }

    @Test func smartUnavailableIsCachedPerDisk() throws {
        let fake = try FakeHost()
        defer { fake.remove() }
        let calls = "\(fake.root)/smartctl-calls"
        let smartctl = try fake.script(
            "smartctl-broken",
            """
            #!/bin/sh
            echo "$3" >> \(calls)
            echo '{"smartctl":{"messages":[{"string":"Smartctl open device: '$3' failed: No such device","severity":"error"}],"exit_status":2}}'
            exit 2
            """)
        let collector = StorageCollector(
            logger: Logger(label: "test.storage"), procRoot: fake.proc, sysRoot: fake.sys, smartctlPath: smartctl)
        let first = collector.collect()
        _ = collector.collect()
        #expect(first.disks.allSatisfy { $0.smartStatus == "unavailable" })
        #expect(first.disks.first?.smartDetail == "Smartctl open device: /dev/sda failed: No such device")
        let logged = try String(contentsOfFile: calls, encoding: .utf8).split(separator: "\n")
        #expect(logged == ["/dev/sda", "/dev/vdb"])
    }

    @Test func smartHealthIsReadFromJSON() throws {
        let fake = try FakeHost()
        defer { fake.remove() }
        let smartctl = try fake.script(
            "smartctl-ok",
            """
            #!/bin/sh
            case "$3" in
              /dev/sda) echo '{"smart_status":{"passed":true}}' ;;
              *) echo '{"smart_status":{"passed":false}}'; exit 8 ;;
            esac
            """)
        let section = StorageCollector(
            logger: Logger(label: "test.storage"), procRoot: fake.proc, sysRoot: fake.sys, smartctlPath: smartctl
        ).collect()
        #expect(section.disks.map(\.smartStatus) == ["passed", "failed"])
    }

    /// The real smartctl (smartmontools) on this machine: its JSON is parsed. These virtio and
    /// loop disks have no SMART, so each is "unavailable" with smartctl's own message naming it;
    /// a disk that answers is "passed" or "failed".
    @Test func realSmartctlJSONIsParsed() async throws {
        let smartctl = try #require(which("smartctl"), "smartctl is not installed (apt-get install smartmontools)")
        let disks = StorageCollector(logger: Logger(label: "test.storage"), smartctlPath: smartctl).collect().disks
        #expect(!disks.isEmpty)
        for disk in disks {
            switch disk.smartStatus {
            case "passed", "failed": #expect(disk.smartDetail.isEmpty)
            case "unavailable": #expect(disk.smartDetail.contains("/dev/\(disk.name)"), "\(disk.name): \(disk.smartDetail)")
            default: Issue.record("\(disk.name): status \(disk.smartStatus)")
            }
        }
    }

    /// The stand-in the process tests use (Tests/Fixtures/smart) prints the real smartctl's
    /// envelope, and the collector reads its verdict per disk.
    @Test func smartctlStandInSpeaksTheRealFormat() async throws {
        let fake = try FakeHost()
        defer { fake.remove() }
        let standIn = "\(fake.root)/smartctl"
        try FileManager.default.copyItem(atPath: Self.standIn, toPath: standIn)
        try "/dev/vdb\n".write(toFile: "\(fake.root)/smart-failing", atomically: true, encoding: .utf8)
        let section = StorageCollector(
            logger: Logger(label: "test.storage"), procRoot: fake.proc, sysRoot: fake.sys, smartctlPath: standIn
        ).collect()
        #expect(section.disks.map(\.smartStatus) == ["passed", "failed"])

        let smartctl = try #require(which("smartctl"), "smartctl is not installed (apt-get install smartmontools)")
        let disk = try #require(StorageCollector(logger: Logger(label: "test.storage")).collect().disks.first).name
        let real = try Self.json(smartctl, "/dev/\(disk)")
        let imitated = try Self.json(standIn, "/dev/\(disk)")
        #expect(real["json_format_version"] as? [Int] == imitated["json_format_version"] as? [Int])
        let realTool = try #require(real["smartctl"] as? [String: Any])
        let imitatedTool = try #require(imitated["smartctl"] as? [String: Any])
        #expect(realTool["version"] as? [Int] == imitatedTool["version"] as? [Int])
        #expect((realTool["argv"] as? [String])?.dropFirst() == (imitatedTool["argv"] as? [String])?.dropFirst())
        #expect(realTool["exit_status"] is Int && imitatedTool["exit_status"] is Int)
    }

    static let standIn = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/smart/smartctl-standin.sh").path

    static func json(_ smartctl: String, _ device: String) throws -> [String: Any] {
        let output = try runProcessBlocking(smartctl, ["--json", "-H", device], timeout: .seconds(20)).stdout
        return try #require(try JSONSerialization.jsonObject(with: output) as? [String: Any])
    }

    @Test func mountsAreUnescapedAndDeduplicated() {
        let entries = StorageCollector.parseMounts(
            """
            /dev/sda1 /mnt/a\\040b ext4 rw 0 0
            /dev/sdb1 /srv xfs rw 0 0
            /dev/sdc1 /srv xfs rw 0 0
            """)
        #expect(entries.map(\.mountPoint) == ["/mnt/a b", "/srv"])
        #expect(entries.last?.device == "/dev/sdc1")
    }
}

/// A temporary proc and sys tree with two real disks, a RAM disk and an unbound loop device.
private struct FakeHost {
    let directory: TempDir
    var root: String { directory.path }
    var proc: String { "\(root)/proc" }
    var sys: String { "\(root)/sys" }
    var data: String { "\(root)/data" }
    var spaced: String { "\(root)/with space" }

    init() throws {
        directory = try TempDir()
        let root = directory.path
        try write("\(root)/proc/diskstats", """
               7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
               1       0 ram0 0 0 0 0 0 0 0 0 0 0 0
               8       0 sda 100 1 300 4 500 5 700 8 2 10 11 0 0 0 0 0 0
               8       1 sda1 90 1 280 4 490 5 690 8 0 10 11 0 0 0 0 0 0
             254      16 vdb 1 0 8 0 0 0 0 0 0 1 1
            """)
        try write("\(root)/proc/self/mounts", """
            proc /proc proc rw,relatime 0 0
            tmpfs /run tmpfs rw 0 0
            /dev/sda1 \(root)/data ext4 rw,relatime 0 0
            /dev/vdb \(root)/with\\040space xfs rw 0 0
            cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0
            """)
        for dir in ["data", "with space"] {
            try FileManager.default.createDirectory(atPath: "\(root)/\(dir)", withIntermediateDirectories: true)
        }
        try write("\(root)/sys/block/sda/size", "2000000\n")
        try write("\(root)/sys/block/sda/queue/rotational", "1\n")
        try write("\(root)/sys/block/sda/device/model", "FAKE DISK       \n")
        try write("\(root)/sys/block/sda/device/serial", "SN123\n")
        try write("\(root)/sys/block/vdb/size", "4096\n")
        try write("\(root)/sys/block/vdb/queue/rotational", "0\n")
        try write("\(root)/sys/block/vdb/serial", "virtio-7\n")
        try write("\(root)/sys/block/loop0/size", "0\n")
        try write("\(root)/sys/block/ram0/size", "8192\n")
    }

    func remove() { directory.remove() }

    func script(_ name: String, _ text: String) throws -> String {
        let path = "\(root)/\(name)"
        try write(path, text + "\n")
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        return path
    }

    private func write(_ path: String, _ text: String) throws {
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }
}
