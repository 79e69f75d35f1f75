import Foundation

/// The filesystem under a path and the whole disks beneath it, as the disk collector
/// names them (`/sys/block` entries), so a brick can be matched to SMART and I/O errors.
struct BrickFilesystem: Equatable {
    var mountPoint: String
    var device: String
    var fsType: String
    var disks: [String]
    /// Mounted read-only (an ext4 or XFS error often remounts it so).
    var readOnly = false

    /// One line of `/proc/self/mountinfo`.
    struct MountInfoEntry: Equatable {
        var deviceNumber: String
        var mountPoint: String
        var fsType: String
        var source: String
        /// The per-mount options ("rw,relatime"); "ro" first when read-only.
        var options = ""
    }

    /// Parses mountinfo: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [TAGS...] - FSTYPE SOURCE SUPEROPTS".
    static func parseMountInfo(_ text: String) -> [MountInfoEntry] {
        var entries: [MountInfoEntry] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let dash = fields.firstIndex(of: "-"), dash >= 6, dash + 2 < fields.count else { continue }
            entries.append(MountInfoEntry(
                deviceNumber: String(fields[2]), mountPoint: StorageCollector.unescapeMountField(fields[4]),
                fsType: String(fields[dash + 1]), source: StorageCollector.unescapeMountField(fields[dash + 2]),
                options: String(fields[5])))
        }
        return entries
    }

    /// The filesystem holding `path`: the mount with the longest mount point that contains
    /// it (the last one listed, the topmost, when a point is mounted over), and its disks.
    static func containing(_ path: String, mountInfo: [MountInfoEntry], sysRoot: String) -> BrickFilesystem? {
        var best: MountInfoEntry?
        for entry in mountInfo where contains(entry.mountPoint, path) {
            if best == nil || entry.mountPoint.count >= best!.mountPoint.count { best = entry }
        }
        guard let mount = best else { return nil }
        var disks = wholeDisks(ofDeviceNumber: mount.deviceNumber, sysRoot: sysRoot)
        // Filesystems without a block device number of their own (btrfs, some ZFS setups)
        // still name their device as the mount source.
        if disks.isEmpty, mount.source.hasPrefix("/dev/") {
            let resolved = URL(fileURLWithPath: mount.source).resolvingSymlinksInPath().lastPathComponent
            disks = wholeDisks(ofName: resolved, sysRoot: sysRoot, depth: 0)
        }
        return BrickFilesystem(mountPoint: mount.mountPoint, device: mount.source, fsType: mount.fsType, disks: disks,
                               readOnly: mount.options.split(separator: ",").contains("ro"))
    }

    private static func contains(_ mountPoint: String, _ path: String) -> Bool {
        if mountPoint == "/" || mountPoint == path { return true }
        return path.hasPrefix(mountPoint.hasSuffix("/") ? mountPoint : mountPoint + "/")
    }

    static func wholeDisks(ofDeviceNumber number: String, sysRoot: String) -> [String] {
        let link = "\(sysRoot)/dev/block/\(number)"
        guard FileManager.default.fileExists(atPath: link) else { return [] }
        let name = URL(fileURLWithPath: link).resolvingSymlinksInPath().lastPathComponent
        return wholeDisks(ofName: name, sysRoot: sysRoot, depth: 0)
    }

    /// A whole disk is itself; a partition belongs to its parent; device-mapper and md
    /// devices to the disks of their slaves.
    private static func wholeDisks(ofName name: String, sysRoot: String, depth: Int) -> [String] {
        let fileManager = FileManager.default
        guard depth < 8, !name.isEmpty else { return [] }
        let device = URL(fileURLWithPath: "\(sysRoot)/class/block/\(name)").resolvingSymlinksInPath()
        if fileManager.fileExists(atPath: device.appendingPathComponent("partition").path) {
            return [device.deletingLastPathComponent().lastPathComponent]
        }
        let slaves = (try? fileManager.contentsOfDirectory(atPath: device.appendingPathComponent("slaves").path)) ?? []
        if !slaves.isEmpty {
            return Array(Set(slaves.flatMap { wholeDisks(ofName: $0, sysRoot: sysRoot, depth: depth + 1) })).sorted()
        }
        return fileManager.fileExists(atPath: "\(sysRoot)/block/\(name)") ? [name] : []
    }
}
