import Foundation
import SpecolaProtocol

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reports what a node offers the scheduler: cores, memory, load, identity and uptime,
/// read from `procRoot` (`meminfo`, `loadavg`, `uptime`) and `uname`.
/// A file that cannot be read leaves its fields at zero.
public struct CapacityCollector: Sendable {
    private let labels: [String: String]
    private let procRoot: String

    public init(labels: [String: String], procRoot: String = "/proc") {
        self.labels = labels
        self.procRoot = procRoot
    }

    public func collect() -> Specola_V1_CapacitySection {
        var section = Specola_V1_CapacitySection()
        section.cpuCores = UInt32(max(ProcessInfo.processInfo.activeProcessorCount, 1))
        section.labels = labels

        let memory = Self.parseMeminfo(readText("meminfo") ?? "")
        section.memoryBytes = (memory["MemTotal"] ?? 0) * 1024
        section.memoryAvailableBytes = (memory["MemAvailable"] ?? memory["MemFree"] ?? 0) * 1024

        let loads = (readText("loadavg") ?? "").split(separator: " ").prefix(3).compactMap { Double($0) }
        if loads.count == 3 {
            section.load1 = loads[0]
            section.load5 = loads[1]
            section.load15 = loads[2]
        }
        if let first = readText("uptime")?.split(separator: " ").first, let seconds = Double(first) {
            section.uptimeSeconds = UInt64(max(seconds, 0))
        }
        section.hostname = Self.hostname()
        section.kernel = Self.kernelRelease()
        return section
    }

    /// `/proc/meminfo` values, in kB as the file states them.
    static func parseMeminfo(_ text: String) -> [String: UInt64] {
        var values: [String: UInt64] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = String(line[..<colon])
            let number = line[line.index(after: colon)...].split(separator: " ").first
            if let number, let value = UInt64(number) { values[key] = value }
        }
        return values
    }

    private func readText(_ name: String) -> String? {
        try? String(contentsOfFile: "\(procRoot)/\(name)", encoding: .utf8)
    }

    private static func hostname() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "" }
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    private static func kernelRelease() -> String {
        var names = utsname()
        guard uname(&names) == 0 else { return "" }
        return withUnsafeBytes(of: &names.release) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}
