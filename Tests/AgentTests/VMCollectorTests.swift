import SpecolaProtocol
import Foundation
import Logging
import TestSupport
import Testing

@testable import SpecolaAgent

@Suite struct VMCollectorTests {
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

/// A libvirtd of the test's own, on a socket inside `workDir`, stopped by PID.
///
/// Started with `spawnProcess` rather than `Process`: a child of a concurrency-pool
/// thread would otherwise inherit a mask that blocks SIGTERM.
private final class PrivateLibvirtd: @unchecked Sendable {
    let uri: String
    private let pid: pid_t
    private let lock = NSLock()
    private var reaped = false

    private init(uri: String, pid: pid_t) {
        self.uri = uri
        self.pid = pid
    }

    static func start(workDir: String, template: URL) async throws -> PrivateLibvirtd {
        let runDir = "\(workDir)/run"
        let driverDir = "\(workDir)/drivers"
        for dir in [runDir, driverDir] {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        let config = try String(contentsOf: template, encoding: .utf8)
            .replacingOccurrences(of: "@RUNDIR@", with: runDir)
        try config.write(toFile: "\(workDir)/libvirtd.conf", atomically: true, encoding: .utf8)
        let socket = "\(runDir)/libvirt-sock"
        try? FileManager.default.removeItem(atPath: socket)

        let logPath = "\(workDir)/libvirtd.log"
        let log = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard log >= 0 else { throw LibvirtdTestError("cannot open \(logPath)") }
        defer { close(log) }
        let pid = try spawnProcess(
            "/usr/sbin/libvirtd", ["-f", "\(workDir)/libvirtd.conf", "-p", "\(workDir)/libvirtd.pid"],
            environment: ["LIBVIRT_DRIVER_DIR": driverDir], stdout: log, stderr: log)
        let daemon = PrivateLibvirtd(uri: "test+unix:///default?socket=\(socket)", pid: pid)
        do {
            try await waitUntil("libvirtd socket \(socket)", timeout: .seconds(15)) {
                if daemon.hasExited() { throw LibvirtdTestError("libvirtd exited early") }
                return FileManager.default.fileExists(atPath: socket)
            }
        } catch {
            try? await daemon.stop()
            let output = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            throw LibvirtdTestError("libvirtd did not start: \(error); log: \(output)")
        }
        return daemon
    }

    /// SIGTERM, then SIGKILL if needed; returns once /proc/PID is gone.
    func stop() async throws {
        if !hasExited() { kill(pid, SIGTERM) }
        do {
            try await waitUntil("libvirtd \(pid) to exit", timeout: .seconds(10)) { self.hasExited() }
        } catch {
            kill(pid, SIGKILL)
            try await waitUntil("libvirtd \(pid) to die after SIGKILL") { self.hasExited() }
        }
        try await waitUntil("/proc/\(pid) to vanish") { !FileManager.default.fileExists(atPath: "/proc/\(self.pid)") }
    }

    private func hasExited() -> Bool {
        lock.withLock {
            if !reaped {
                var status: Int32 = 0
                reaped = waitpid(pid, &status, WNOHANG) == pid
            }
            return reaped
        }
    }
}

private struct LibvirtdTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Collects log messages of warning level and above.
private final class RecordedLogs: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []
    var messages: [String] { lock.withLock { stored } }
    func append(_ message: String) { lock.withLock { stored.append(message) } }
}

private struct RecordingLogHandler: LogHandler {
    let records: RecordedLogs
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        if event.level >= .warning { records.append(event.message.description) }
    }
}
