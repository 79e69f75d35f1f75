import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Deletes the OUTPUT rules that an earlier test process, now dead, tagged `tagPrefix` + its pid:
/// a run killed before its cleanup (a session's time limit, a crash) would otherwise leave a
/// partition in place that the next run on this machine trips over.
public func removeStaleIptablesRules(tagPrefix: String, tables: [String] = ["filter"]) {
    for table in tables {
        guard let listing = try? runBlocking(ReplicaGroup.iptables, ["-w", "-t", table, "-S", "OUTPUT"]).stdout else { continue }
        for line in listing.split(separator: "\n") where line.contains(tagPrefix) {
            let words = line.split(separator: " ").map(String.init)
            guard words.first == "-A", let tag = words.first(where: { $0.hasPrefix(tagPrefix) }),
                  let pid = Int32(tag.dropFirst(tagPrefix.count)), pid != getpid(), kill(pid, 0) != 0
            else { continue }
            _ = try? runBlocking(ReplicaGroup.iptables, ["-w", "-t", table, "-D"] + words.dropFirst())
        }
    }
}
