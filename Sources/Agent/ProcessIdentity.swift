import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One process as the kernel knows it: its pid and its start time (clock ticks after
/// boot). A pid recorded now is never mistaken later for another process that reuses
/// the number, so it is safe to signal from a cache (the self-fence does).
public struct ProcessIdentity: Sendable, Hashable {
    public let pid: pid_t
    public let startTicks: UInt64

    /// The process `pid` as it is now; nil when there is none.
    public init?(pid: pid_t) {
        guard pid > 0, let ticks = Self.startTicks(of: pid) else { return nil }
        self.pid = pid
        startTicks = ticks
    }

    /// Whether this very process still exists.
    public var isAlive: Bool { Self.startTicks(of: pid) == startTicks }

    /// Signals it (with `group`, its whole process group, which it leads) if it is still this
    /// process; returns whether it was.
    @discardableResult
    public func signal(_ signal: Int32, group: Bool = false) -> Bool {
        guard isAlive else { return false }
        return kill(group ? -pid : pid, signal) == 0
    }

    /// Field 22 of /proc/PID/stat, counted after the command name (which may hold spaces).
    static func startTicks(of pid: pid_t) -> UInt64? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state), so field 22 is fields[19].
        guard fields.count > 19 else { return nil }
        return UInt64(fields[19])
    }
}

extension ProcessIdentity {
    /// Whether `pid` is a running process under `procRoot`. A zombie (dead, not yet reaped by
    /// its parent) is not: a killed brick stays one until init reaps it.
    static func isRunning(_ pid: pid_t, procRoot: String = "/proc") -> Bool {
        guard pid > 0, let stat = try? String(contentsOfFile: "\(procRoot)/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")"),
              let state = stat[stat.index(after: close)...].split(separator: " ").first else { return false }
        return state != "Z" && state != "X"
    }
}
