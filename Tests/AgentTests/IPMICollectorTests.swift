import Foundation
import Logging
import SpecolaAgent
import SpecolaProtocol
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Runs against real ipmi_sim BMCs started from Tests/Fixtures/ipmi.
@Suite("IPMICollector against ipmi_sim", .enabled(if: SimulatedBMC.isInstalled, "ipmi_sim is not installed (apt-get install openipmi)"))
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
        let stateFile = bmc.workdir.appendingPathComponent("power.state").path
        #expect(try String(contentsOfFile: stateFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) == "0")
    }

    @Test func selClearedOnBMCReportsNewEntriesAgain() async throws {
        let bmc = try await SimulatedBMC.start()
        defer { bmc.stop() }
        let collector = bmc.collector()
        try bmc.setCPUTemperature(100)
        _ = try await poll("first SEL entries") { collector.collect().newSEL.first { $0.state == .critical } }

        try bmc.clearSEL()
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
        let cache = try TemporaryDirectory()
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
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let passwordFile = try dir.write("password", "secret\n")
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

/// Polls `probe` about once a second until it yields a value, failing after `deadline`.
private func poll<T>(
    _ what: String, deadline: Duration = .seconds(15), _ probe: () throws -> T?
) async throws -> T {
    let clock = ContinuousClock()
    let end = clock.now + deadline
    while true {
        if let value = try probe() { return value }
        guard clock.now < end else { throw TestFailure("timed out after \(deadline) waiting for \(what)") }
        try await Task.sleep(for: .seconds(1))
    }
}

private struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// One ipmi_sim process on its own 127.0.1.x address, stopped by PID.
private final class SimulatedBMC: Sendable {
    static let fixtures = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/ipmi")

    static var isInstalled: Bool {
        ["/usr/bin/ipmi_sim", "/usr/local/bin/ipmi_sim"].contains { FileManager.default.isExecutableFile(atPath: $0) }
    }

    private static let nextHost = Mutex(0)

    let workdir: URL
    let address: String
    let port: Int
    let pid: pid_t
    var sdrCacheDirectory: String { workdir.appendingPathComponent("sdr-cache").path }
    var passwordFile: String { workdir.appendingPathComponent("password").path }

    private init(workdir: URL, address: String, port: Int, pid: pid_t) {
        self.workdir = workdir
        self.address = address
        self.port = port
        self.pid = pid
    }

    static func start() async throws -> SimulatedBMC {
        let host = nextHost.withLock { value in
            defer { value += 1 }
            return value
        }
        let address = "127.0.1.\(10 + host % 200)"
        let port = 20000 + Int(getpid() % 10000) * 2
        let workdir = try TemporaryDirectory().url
        try "secret\n".write(toFile: workdir.appendingPathComponent("password").path, atomically: true, encoding: .utf8)

        let script = fixtures.appendingPathComponent("start-bmc.sh").path
        let (status, printed) = try runCommand(["/bin/bash", script, workdir.path, address, String(port)])
        guard status == 0, let pid = pid_t(printed.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            try? FileManager.default.removeItem(at: workdir)
            throw TestFailure("start-bmc.sh failed (\(status)): \(printed)")
        }
        let bmc = SimulatedBMC(workdir: workdir, address: address, port: port, pid: pid)
        do {
            let probe = BMCPower(host: address, port: port, user: "admin", password: "secret", timeout: .milliseconds(500))
            _ = try await poll("ipmi_sim on \(address):\(port)", deadline: .seconds(10)) { try? probe.powerStatus() }
        } catch {
            bmc.stop()
            throw error
        }
        return bmc
    }

    func collector() -> IPMICollector {
        IPMICollector(
            target: .lan(host: address, port: port, user: "admin", passwordFile: passwordFile),
            sdrCacheDirectory: sdrCacheDirectory, logger: Logger(label: "test.ipmi"), timeout: .seconds(2))
    }

    func power() -> BMCPower {
        BMCPower(host: address, port: port, user: "admin", password: "secret", timeout: .seconds(2))
    }

    func setCPUTemperature(_ celsius: Int) throws {
        try "\(celsius)\n".write(toFile: workdir.appendingPathComponent("cputemp.val").path, atomically: true, encoding: .utf8)
    }

    /// Clears the SEL with FreeIPMI's ipmi-sel, as an operator would.
    func clearSEL() throws {
        let (status, output) = try runCommand([
            "/usr/sbin/ipmi-sel", "-h", "\(address):\(port)", "-u", "admin", "-p", "secret",
            "-D", "LAN_2_0", "-W", "opensesspriv", "--clear",
        ])
        guard status == 0 else { throw TestFailure("ipmi-sel --clear failed (\(status)): \(output)") }
    }

    /// SIGTERM, then SIGKILL after 5 s; waits until /proc/PID is gone (or a zombie), then removes the workdir.
    func stop() {
        kill(pid, SIGTERM)
        if !waitForExit(within: .seconds(5)) {
            kill(pid, SIGKILL)
            _ = waitForExit(within: .seconds(5))
        }
        try? FileManager.default.removeItem(at: workdir)
    }

    private func waitForExit(within timeout: Duration) -> Bool {
        let clock = ContinuousClock()
        let end = clock.now + timeout
        while clock.now < end {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
            if stat.split(separator: ")").last?.split(separator: " ").first == "Z" { return true }
            usleep(20_000)
        }
        return false
    }
}

/// Runs a command to completion and returns its exit status and stdout.
///
/// posix_spawn rather than Foundation's Process: the child gets an empty signal mask (Swift's
/// worker threads block SIGTERM, which a daemon would inherit); start-bmc.sh closes inherited
/// descriptors, so a daemon it starts never holds a test's pipe open.
private func runCommand(_ argv: [String]) throws -> (status: Int32, output: String) {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { throw TestFailure("pipe: errno \(errno)") }
    for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    defer { close(fds[0]) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var noSignals = sigset_t()
    sigemptyset(&noSignals)
    var allSignals = sigset_t()
    sigfillset(&allSignals)
    posix_spawnattr_setsigmask(&attributes, &noSignals)
    posix_spawnattr_setsigdefault(&attributes, &allSignals)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

    var cArgs = argv.map { strdup($0) } + [nil]
    defer { cArgs.forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, argv[0], &actions, &attributes, &cArgs, environ)
    close(fds[1])
    guard rc == 0 else { throw TestFailure("posix_spawn \(argv[0]): \(String(cString: strerror(rc)))") }

    var output = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(fds[0], &buffer, buffer.count)
        if n > 0 { output += buffer[0..<n] } else if n == 0 || errno != EINTR { break }
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let exitCode = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return (exitCode, String(decoding: output, as: UTF8.self))
}

private struct TemporaryDirectory {
    let url: URL
    var path: String { url.path }

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("specola-ipmi-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func write(_ name: String, _ contents: String) throws -> String {
        let file = url.appendingPathComponent(name).path
        try contents.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    func remove() {
        try? FileManager.default.removeItem(at: url)
    }
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
