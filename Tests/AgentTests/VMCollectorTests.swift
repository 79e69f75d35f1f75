import SpecolaProtocol
import Foundation
import Logging
import TestSupport
import Testing

@testable import SpecolaAgent
import CooperativePoolWatch
import SpecolaProcesses

@Suite(.runsOffThePool, .watchesCooperativePool) struct VMCollectorTests {
    private static let fixtures = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/libvirt")

    @Test func listsDomainsOfTestDriverWithTheirStates() {
        let uri = "test://" + Self.fixtures.appendingPathComponent("node.xml").path
        let collector = VMCollector(uri: uri, logger: Logger(label: "test.vm"))
        let section = collector.collect()
        #expect(section.available, "\(section.reason)")
        #expect(section.uri == uri)
        let states = Dictionary(uniqueKeysWithValues: section.vms.map { ($0.name, $0.state) })
        #expect(states == ["web1": "running", "db1": "shutoff", "batch1": "paused", "crashy": "crashed"])
        let web = section.vms.first { $0.name == "web1" }
        #expect(web?.vcpus == 2)
        #expect(web?.memoryKib == 4_194_304)
        #expect(web?.uuid.count == 36)
    }

    @Test func unreachableDaemonIsReportedUnavailable() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let uri = "test+unix:///default?socket=\(dir.path)/missing-sock"
        let section = VMCollector(uri: uri, logger: Logger(label: "test.vm")).collect()
        #expect(!section.available)
        #expect(section.reason.contains("missing-sock"), "\(section.reason)")
        #expect(section.vms.isEmpty)
    }

    @Test func unavailabilityIsLoggedOncePerChange() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let records = RecordedLogs()
        let logger = Logger(label: "test.vm") { _ in RecordingLogHandler(records: records) }
        let collector = VMCollector(uri: "test+unix:///default?socket=\(dir.path)/missing-sock", logger: logger)
        for _ in 0..<3 { _ = collector.collect() }
        #expect(records.messages == ["libvirt unavailable"])
    }

    @Test func seesChangesMadeByOtherProcessesAndReconnects() async throws {
        let dir = try TempDir()
        let template = Self.fixtures.appendingPathComponent("libvirtd.conf.template")
        var daemons: [PrivateLibvirtd] = []
        do {
            let daemon = try await PrivateLibvirtd.start(workDir: dir.path, template: template)
            daemons.append(daemon)
            let collector = VMCollector(uri: daemon.uri, logger: Logger(label: "test.vm"))
            func state() -> String? { collector.collect().vms.first { $0.name == "test" }?.state }

            try await waitUntil("domain test running") { state() == "running" }
            #expect(try virsh(daemon.uri, "destroy", "test") == 0)
            try await waitUntil("domain test shut off") { state() == "shutoff" }
            #expect(try virsh(daemon.uri, "start", "test") == 0)
            try await waitUntil("domain test running again") { state() == "running" }

            try await daemon.stop()
            let down = collector.collect()
            #expect(!down.available)
            #expect(!down.reason.isEmpty)

            daemons.append(try await PrivateLibvirtd.start(workDir: dir.path, template: template))
            try await waitUntil("collector to reconnect") { collector.collect().available }
        } catch {
            for daemon in daemons { try? await daemon.stop() }
            dir.remove()
            throw error
        }
        for daemon in daemons { try await daemon.stop() }
        dir.remove()
    }

    private func virsh(_ uri: String, _ args: String...) throws -> Int32 {
        try runProcessBlocking("virsh", ["-q", "-c", uri] + args, timeout: .seconds(20)).status
    }
}
