import Foundation
import Logging
import SpecolaAgent
import SpecolaProtocol
import Synchronization
import TestSupport
import Testing

import CooperativePoolWatch
#if canImport(Glibc)
import Glibc
#endif

/// Runs against real ipmi_sim BMCs started from Tests/Fixtures/ipmi.
@Suite("IPMICollector against ipmi_sim", .runsOffThePool, .watchesCooperativePool, .enabled(if: SimulatedBMC.isInstalled, "ipmi_sim is not installed (apt-get install openipmi)"))
struct IPMICollectorTests {
    @Test func readsSensors() async throws {
        let bmc = try await SimulatedBMC.start()
        defer { bmc.stop() }
        let collector = bmc.collector()

        let (section, _) = collector.collect()

        #expect(section.present, "reason: \(section.reason)")
        #expect(section.source == "lan:\(bmc.address):\(bmc.port)")
        let cpu = try #require(section.sensors.first { $0.name == "CPU Temp" })
        #expect(cpu.hasReading_p)
        #expect(cpu.reading == 45)
        #expect(cpu.type == "Temperature")
        #expect(cpu.units == "C")
        #expect(cpu.state == .nominal)
        let fan = try #require(section.sensors.first { $0.name == "FAN1" })
        #expect(fan.type == "Fan")
        #expect(fan.reading == 3000)
        #expect(section.sensors.first { $0.name == "12V" }?.type == "Voltage")
        let cached = try FileManager.default.subpathsOfDirectory(atPath: bmc.sdrCacheDirectory)
        #expect(cached.contains { $0.contains("sdrcache") }, "SDR cache files: \(cached)")
    }

    @Test func cpuTemperatureOverThresholdBecomesCritical() async throws {
        let bmc = try await SimulatedBMC.start()
        defer { bmc.stop() }
        let collector = bmc.collector()
        #expect(collector.collect().bmc.sensors.first { $0.name == "CPU Temp" }?.state == .nominal)

        try bmc.setCPUTemperature(100)

        let cpu = try await poll("CPU Temp critical") {
            collector.collect().bmc.sensors.first { $0.name == "CPU Temp" && $0.state == .critical }
        }
        #expect(cpu.reading == 100)
    }

    @Test func newSELEntryIsReturnedExactlyOnce() async throws {
        let bmc = try await SimulatedBMC.start()
        defer { bmc.stop() }
        let collector = bmc.collector()
        #expect(collector.collect().newSEL.isEmpty)

        try bmc.setCPUTemperature(100)

        var seen: [Specola_V1_SelEntry] = []
        let critical = try await poll("SEL entry for CPU Temp critical") { () -> Specola_V1_SelEntry? in
            let batch = collector.collect().newSEL
            seen += batch
            return batch.first { $0.sensorName == "CPU Temp" && $0.state == .critical }
        }
        #expect(critical.sensorType == "Temperature")
        #expect(!critical.event.isEmpty)
        #expect(Set(seen.map(\.recordID)).count == seen.count, "an entry was returned twice: \(seen)")
        let again = collector.collect().newSEL
        #expect(!again.contains { entry in seen.contains { $0.recordID == entry.recordID } })
        #expect(collector.selCursor == seen.map(\.recordID).max())
    }

    @Test func powerReadsOnThenOffAfterPowerOff() async throws {
        let bmc = try await SimulatedBMC.start()
        defer { bmc.stop() }
        let collector = bmc.collector()
        #expect(collector.collect().bmc.power == .on)
        let power = bmc.power()
        #expect(try power.powerStatus() == .on)

        try power.powerOff()

        _ = try await poll("power off") { try power.powerStatus() == .off ? true : nil }
        #expect(collector.collect().bmc.power == .off)
        let stateFile = bmc.workdir.file("power.state")
        #expect(try String(contentsOfFile: stateFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) == "0")
    }

    @Test func selClearedOnBMCReportsNewEntriesAgain() async throws {
        let bmc = try await SimulatedBMC.start()
        defer { bmc.stop() }
        let collector = bmc.collector()
        try bmc.setCPUTemperature(100)
        _ = try await poll("first SEL entries") { collector.collect().newSEL.first { $0.state == .critical } }

        try await bmc.clearSEL()
        try bmc.setCPUTemperature(45)
        let recovered = try await poll("SEL entries after clear") { () -> [Specola_V1_SelEntry]? in
            let batch = collector.collect().newSEL
            return batch.isEmpty ? nil : batch
        }
        #expect(recovered.allSatisfy { $0.sensorName == "CPU Temp" })
    }

    @Test func inBandWithoutLocalBMCIsNotPresent() throws {
        try #require(!FileManager.default.fileExists(atPath: "/dev/ipmi0"), "this machine has a local BMC")
        let logs = CapturedLogs()
        let cache = try TempDir()
        defer { cache.remove() }
        let collector = IPMICollector(target: .inBand, sdrCacheDirectory: cache.path, logger: logs.logger)

        let first = collector.collect()
        let second = collector.collect()

        #expect(!first.bmc.present)
        #expect(first.bmc.source == "in-band")
        #expect(first.bmc.reason.contains("no local BMC"), "reason: \(first.bmc.reason)")
        #expect(first.newSEL.isEmpty)
        #expect(!second.bmc.present)
        #expect(logs.count(atLeast: .warning) == 1, "logged: \(logs.messages)")
    }

    @Test func unreachableLANTargetFailsQuickly() throws {
        let logs = CapturedLogs()
        let dir = try TempDir()
        defer { dir.remove() }
        try dir.write("password", "secret\n")
        let passwordFile = dir.file("password")
        let collector = IPMICollector(
            target: .lan(host: "127.0.1.250", port: 623, user: "admin", passwordFile: passwordFile),
            sdrCacheDirectory: dir.path + "/sdr", logger: logs.logger, timeout: .seconds(1))

        let clock = ContinuousClock()
        let start = clock.now
        let first = collector.collect()
        let second = collector.collect()
        let elapsed = clock.now - start

        #expect(!first.bmc.present)
        #expect(first.bmc.source == "lan:127.0.1.250:623")
        #expect(first.bmc.reason.contains("127.0.1.250:623"), "reason: \(first.bmc.reason)")
        #expect(!second.bmc.present)
        #expect(elapsed < .seconds(6), "two cycles took \(elapsed)")
        #expect(logs.count(atLeast: .warning) == 1, "logged: \(logs.messages)")
        #expect(!logs.messages.joined().contains("secret"))
    }
}

/// Polls `probe` until it yields a value, failing after `deadline`.
private func poll<T>(
    _ what: String, deadline: Duration = .seconds(15), _ probe: () throws -> T?
) async throws -> T {
    var found: T?
    try await waitUntil(what, timeout: deadline, every: .milliseconds(500)) {
        found = try probe()
        return found != nil
    }
    return found!
}

/// Collects log messages so tests can count warnings.
private final class CapturedLogs: Sendable {
    private let entries = Mutex<[(level: Logger.Level, text: String)]>([])

    var logger: Logger {
        Logger(label: "test.ipmi") { _ in Handler(store: self) }
    }

    var messages: [String] {
        entries.withLock { $0.map { "\($0.level): \($0.text)" } }
    }

    func count(atLeast level: Logger.Level) -> Int {
        entries.withLock { $0.filter { $0.level >= level }.count }
    }

    private struct Handler: LogHandler {
        let store: CapturedLogs
        var metadata: Logger.Metadata = [:]
        var metadataProvider: Logger.MetadataProvider?
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let text = "\(event.message) \(event.metadata ?? [:])"
            store.entries.withLock { $0.append((event.level, text)) }
        }
    }
}
