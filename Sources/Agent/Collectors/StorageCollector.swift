import Foundation
import Logging
import SpecolaProtocol
import SpecolaProcesses

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Reports a node's disks and mounted filesystems.
///
/// Disks are the whole devices in `sysRoot/block` with their counters from
/// `procRoot/diskstats`. RAM disks (`ram*`) and devices of size 0 (unbound `loop*`,
/// empty `zram*` or optical drives) are skipped, so a bound loop device counts as a disk.
///
/// Filesystems come from `procRoot/self/mounts` plus `statvfs`. Pseudo and memory-backed
/// types (proc, sysfs, cgroup, tmpfs, overlay, squashfs, ...) are skipped, and so is any
/// mount whose `statvfs` fails or reports no blocks.
///
/// SMART health comes from `smartctl --json -H /dev/NAME`. When smartctl is missing or
/// cannot query a disk the status is "unavailable", and that answer is kept for the disk
/// so smartctl is not run for it again; "passed"/"failed" are rechecked after `smartRecheckInterval`.
public final class StorageCollector: @unchecked Sendable {
    private let logger: Logger
    private let procRoot: String
    private let sysRoot: String
    private let smartctlPath: String
    private let smartRecheckInterval: Duration
    private let lock = NSLock()
    private var smartCache: [String: SmartResult] = [:]

    public init(
        logger: Logger, procRoot: String = "/proc", sysRoot: String = "/sys",
        smartctlPath: String = "smartctl", smartRecheckInterval: Duration = .seconds(600)
    ) {
        self.logger = logger
        self.procRoot = procRoot
        self.sysRoot = sysRoot
        self.smartctlPath = smartctlPath
        self.smartRecheckInterval = smartRecheckInterval
    }

    public func collect() -> Specola_V1_StorageSection {
        var section = Specola_V1_StorageSection()
        section.disks = collectDisks()
        section.filesystems = collectFilesystems()
        return section
    }

    // MARK: disks

    private func collectDisks() -> [Specola_V1_Disk] {
        let counters = Self.parseDiskstats(read("\(procRoot)/diskstats") ?? "")
        let blockDir = "\(sysRoot)/block"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: blockDir)) ?? []
        var disks: [Specola_V1_Disk] = []
        for name in names.sorted() where !name.hasPrefix("ram") {
            let sectors = UInt64(read("\(blockDir)/\(name)/size")?.trimmed ?? "") ?? 0
            guard sectors > 0 else { continue }
            var disk = Specola_V1_Disk()
            disk.name = name
            // /sys/block/X/size counts 512-byte sectors whatever the device's block size.
            disk.sizeBytes = sectors * 512
            disk.rotational = read("\(blockDir)/\(name)/queue/rotational")?.trimmed == "1"
            disk.model = read("\(blockDir)/\(name)/device/model")?.trimmed ?? ""
            disk.serial =
                (read("\(blockDir)/\(name)/device/serial") ?? read("\(blockDir)/\(name)/serial"))?.trimmed ?? ""
            if let stats = counters[name] {
                disk.readsCompleted = stats.readsCompleted
                disk.writesCompleted = stats.writesCompleted
                disk.sectorsRead = stats.sectorsRead
                disk.sectorsWritten = stats.sectorsWritten
                disk.ioInProgress = stats.ioInProgress
            }
            // SCSI and SATA disks count failed commands; the counter is hex ("0x1a").
            if let text = read("\(blockDir)/\(name)/device/ioerr_cnt")?.trimmed {
                disk.ioErrors = UInt64(text.hasPrefix("0x") ? String(text.dropFirst(2)) : text, radix: 16) ?? 0
            }
            let smart = smartHealth(of: name)
            disk.smartStatus = smart.status
            disk.smartDetail = smart.detail
            disks.append(disk)
        }
        return disks
    }

    struct DiskCounters: Equatable {
        var readsCompleted: UInt64 = 0
        var sectorsRead: UInt64 = 0
        var writesCompleted: UInt64 = 0
        var sectorsWritten: UInt64 = 0
        var ioInProgress: UInt64 = 0
    }

    /// Fields after major, minor and name: reads, reads merged, sectors read, ms reading,
    /// writes, writes merged, sectors written, ms writing, I/Os in progress, ...
    static func parseDiskstats(_ text: String) -> [String: DiskCounters] {
        var result: [String: DiskCounters] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 12 else { continue }
            let numbers = fields[3...].map { UInt64($0) ?? 0 }
            result[String(fields[2])] = DiskCounters(
                readsCompleted: numbers[0], sectorsRead: numbers[2],
                writesCompleted: numbers[4], sectorsWritten: numbers[6], ioInProgress: numbers[8])
        }
        return result
    }

    // MARK: SMART

    private struct SmartResult {
        let status: String
        let detail: String
        /// nil for "unavailable", which is never retried.
        let checkedAt: ContinuousClock.Instant?
    }

    private func smartHealth(of disk: String) -> SmartResult {
        lock.withLock {
            if let cached = smartCache[disk] {
                guard let checkedAt = cached.checkedAt else { return cached }
                if ContinuousClock.now - checkedAt < smartRecheckInterval { return cached }
            }
            let result = querySmart(disk)
            if result.checkedAt == nil {
                logger.debug("SMART unavailable", metadata: ["disk": "\(disk)", "reason": "\(result.detail)"])
            }
            smartCache[disk] = result
            return result
        }
    }

    private func querySmart(_ disk: String) -> SmartResult {
        // Names such as cciss!c0d0 stand for /dev/cciss/c0d0.
        let device = "/dev/" + disk.replacingOccurrences(of: "!", with: "/")
        let output: Data
        do {
            output = try runProcessBlocking(smartctlPath, ["--json", "-H", device], timeout: .seconds(20)).stdout
        } catch {
            return SmartResult(status: "unavailable", detail: "\(error)", checkedAt: nil)
        }
        let json = (try? JSONSerialization.jsonObject(with: output)) as? [String: Any] ?? [:]
        if let health = json["smart_status"] as? [String: Any], let passed = health["passed"] as? Bool {
            return SmartResult(
                status: passed ? "passed" : "failed", detail: "", checkedAt: ContinuousClock.now)
        }
        let smartctl = json["smartctl"] as? [String: Any]
        let messages = (smartctl?["messages"] as? [[String: Any]] ?? []).compactMap { $0["string"] as? String }
        let detail = messages.isEmpty ? "smartctl reported no health status" : messages.joined(separator: "; ")
        return SmartResult(status: "unavailable", detail: detail, checkedAt: nil)
    }

    // MARK: filesystems

    private static let skippedTypes: Set<String> = [
        "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
        "devtmpfs", "efivarfs", "fusectl", "fuse.lxcfs", "fuse.gvfsd-fuse", "fuse.portal",
        "hugetlbfs", "mqueue", "nsfs", "overlay", "proc", "pstore", "ramfs", "rpc_pipefs",
        "securityfs", "selinuxfs", "squashfs", "sysfs", "tmpfs", "tracefs",
    ]

    struct MountEntry: Equatable {
        let device: String
        let mountPoint: String
        let fsType: String
    }

    /// Parses `/proc/self/mounts`, decoding octal escapes (`\040` for a space).
    /// A mount point listed twice keeps its last (topmost) entry.
    static func parseMounts(_ text: String) -> [MountEntry] {
        var entries: [MountEntry] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 3 else { continue }
            let entry = MountEntry(
                device: unescapeMountField(fields[0]), mountPoint: unescapeMountField(fields[1]), fsType: String(fields[2]))
            entries.removeAll { $0.mountPoint == entry.mountPoint }
            entries.append(entry)
        }
        return entries
    }

    /// Decodes the octal escapes of mounts and mountinfo fields (`\040` for a space).
    static func unescapeMountField(_ field: Substring) -> String {
        guard field.contains("\\") else { return String(field) }
        var bytes: [UInt8] = []
        var utf8 = Array(field.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "\\"), utf8.count >= 3,
                let value = UInt8(String(decoding: utf8.prefix(3), as: UTF8.self), radix: 8)
            {
                bytes.append(value)
                utf8 = utf8.dropFirst(3)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private func collectFilesystems() -> [Specola_V1_Filesystem] {
        let mounts = Self.parseMounts(read("\(procRoot)/self/mounts") ?? "")
        var filesystems: [Specola_V1_Filesystem] = []
        for mount in mounts where !Self.skippedTypes.contains(mount.fsType) {
            var stats = statvfs()
            guard statvfs(mount.mountPoint, &stats) == 0, stats.f_blocks > 0 else { continue }
            let fragment = UInt64(stats.f_frsize)
            var filesystem = Specola_V1_Filesystem()
            filesystem.mountPoint = mount.mountPoint
            filesystem.device = mount.device
            filesystem.fsType = mount.fsType
            filesystem.sizeBytes = UInt64(stats.f_blocks) * fragment
            filesystem.freeBytes = UInt64(stats.f_bfree) * fragment
            filesystem.availableBytes = UInt64(stats.f_bavail) * fragment
            filesystem.files = UInt64(stats.f_files)
            filesystem.filesFree = UInt64(stats.f_ffree)
            filesystems.append(filesystem)
        }
        return filesystems
    }

    private func read(_ path: String) -> String? {
        try? String(contentsOfFile: path, encoding: .utf8)
    }
}

extension String {
    fileprivate var trimmed: String { trimmingCharacters(in: .whitespacesAndNewlines) }
}
