import Foundation
import TestSupport
import Testing

@testable import SpecolaAgent
import CooperativePoolWatch

@Suite(.runsOffThePool, .watchesCooperativePool) struct CapacityCollectorTests {
    @Test func readsTheRealMachine() throws {
        let section = CapacityCollector(labels: ["rack": "r1"]).collect()
        #expect(section.cpuCores >= 1)
        #expect(section.memoryBytes > 0)
        #expect(section.memoryAvailableBytes > 0 && section.memoryAvailableBytes <= section.memoryBytes)
        #expect(section.load1 >= 0)
        #expect(section.uptimeSeconds > 0)
        #expect(section.labels == ["rack": "r1"])
        let hostname = try String(contentsOfFile: "/proc/sys/kernel/hostname", encoding: .utf8)
        #expect(section.hostname == hostname.trimmingCharacters(in: .whitespacesAndNewlines))
        let release = try String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8)
        #expect(section.kernel == release.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    @Test func parsesAFakeProc() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        try "MemTotal:       16384000 kB\nMemFree:         1000 kB\nMemAvailable:    8192000 kB\n"
            .write(toFile: "\(dir.path)/meminfo", atomically: true, encoding: .utf8)
        try "0.50 1.25 2.00 3/456 7890\n".write(toFile: "\(dir.path)/loadavg", atomically: true, encoding: .utf8)
        try "12345.67 20000.00\n".write(toFile: "\(dir.path)/uptime", atomically: true, encoding: .utf8)

        let section = CapacityCollector(labels: [:], procRoot: dir.path).collect()
        #expect(section.memoryBytes == 16_384_000 * 1024)
        #expect(section.memoryAvailableBytes == 8_192_000 * 1024)
        #expect(section.load1 == 0.5)
        #expect(section.load5 == 1.25)
        #expect(section.load15 == 2.0)
        #expect(section.uptimeSeconds == 12345)
    }

    @Test func missingProcFilesLeaveZeros() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let section = CapacityCollector(labels: [:], procRoot: dir.path).collect()
        #expect(section.memoryBytes == 0)
        #expect(section.uptimeSeconds == 0)
        #expect(section.cpuCores >= 1)
    }
}
