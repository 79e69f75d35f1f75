import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The self-fence lease on disk, so that an agent restarted while cut off still stops the work it
/// re-attached: the new process starts from the old one's last renewal instead of from nothing.
/// Kept in the kernel's boot clock, which a restarted process shares; a reboot discards it (no work
/// survives one).
struct LeaseRecord: Codable, Equatable {
    var kernelBootID: String
    /// CLOCK_BOOTTIME, in nanoseconds, of the last renewal.
    var renewedAtBootNs: UInt64
    var lengthMs: Int64

    static let fileName = "self-fence-lease.json"

    static func currentKernelBootID() -> String {
        ((try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8)) ?? "")
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func bootClockNs() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_BOOTTIME, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    /// The record of a renewal at `instant`.
    init(renewedAt instant: ContinuousClock.Instant, length: Duration, now: ContinuousClock.Instant = .now) {
        kernelBootID = Self.currentKernelBootID()
        let age = now - instant
        let ageNs = UInt64(max(0, age.components.seconds)) * 1_000_000_000 + UInt64(max(0, age.components.attoseconds / 1_000_000_000))
        let boot = Self.bootClockNs()
        renewedAtBootNs = boot > ageNs ? boot - ageNs : 0
        lengthMs = length.components.seconds * 1_000 + length.components.attoseconds / 1_000_000_000_000_000
    }

    /// The renewal instant and lease length, or nil when the record is from another boot.
    func restored(now: ContinuousClock.Instant = .now) -> (renewedAt: ContinuousClock.Instant, length: Duration)? {
        guard !kernelBootID.isEmpty, kernelBootID == Self.currentKernelBootID(), lengthMs > 0 else { return nil }
        let boot = Self.bootClockNs()
        let age = boot > renewedAtBootNs ? boot - renewedAtBootNs : 0
        return (now - .nanoseconds(Int64(age)), .milliseconds(lengthMs))
    }

    static func load(from directory: String) -> LeaseRecord? {
        guard let data = FileManager.default.contents(atPath: directory + "/" + fileName) else { return nil }
        return try? JSONDecoder().decode(LeaseRecord.self, from: data)
    }

    /// Replaced by rename, without fsync (Foundation's `.atomic` syncs): the record only matters
    /// while the machine stays up.
    func save(to directory: String) throws {
        let path = directory + "/" + Self.fileName
        try JSONEncoder().encode(self).write(to: URL(fileURLWithPath: path + ".new"))
        guard rename(path + ".new", path) == 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path, NSUnderlyingErrorKey: POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)])
        }
    }
}
