import Foundation
import Logging
import SpecolaAgent
import SpecolaBMC
import SpecolaProtocol
import Synchronization
#if canImport(Glibc)
import Glibc
import SpecolaProcesses
#endif

/// One ipmi_sim BMC (OpenIPMI) on its own 127.0.1.x address, started from the
/// project's fixture script and stopped by PID. Credentials admin/secret.
public final class SimulatedBMC: Sendable {
    public static let fixtures = BuiltProducts.repositoryRoot + "/Tests/Fixtures/ipmi"

    public static var isInstalled: Bool { which("ipmi_sim") != nil }

    private static let nextHost = Mutex(0)

    public let workdir: TempDir
    public let address: String
    public let port: Int
    public let pid: pid_t
    public var sdrCacheDirectory: String { workdir.file("sdr-cache") }
    public var passwordFile: String { workdir.file("password") }

    private init(workdir: TempDir, address: String, port: Int, pid: pid_t) {
        self.workdir = workdir
        self.address = address
        self.port = port
        self.pid = pid
    }

    /// Starts a BMC and waits until it answers a chassis status request; a port
    /// that turns out to be taken (ipmi_sim also needs PORT+1) is retried with another.
    public static func start(address requested: String? = nil) async throws -> SimulatedBMC {
        var lastError: (any Error)?
        for _ in 0..<3 {
            do {
                return try await startOnce(address: requested)
            } catch {
                lastError = error
            }
        }
        throw lastError!
    }

    private static func startOnce(address requested: String?) async throws -> SimulatedBMC {
        let address = requested ?? "127.0.1.\(100 + nextHost.withLock { value in defer { value += 1 }; return value } % 150)"
        let port = freePort(host: address, udp: true)
        let workdir = try TempDir("specola-bmc")
        try workdir.write("password", "secret\n")
        let result = try await run("/bin/bash", [fixtures + "/start-bmc.sh", workdir.path, address, String(port)], timeout: .seconds(30))
        guard result.status == 0, let pid = pid_t(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            workdir.remove()
            throw TimedOut(what: "start-bmc.sh (exit \(result.status)): \(result.stdout) \(result.stderr)")
        }
        let bmc = SimulatedBMC(workdir: workdir, address: address, port: port, pid: pid)
        do {
            let probe = BMCPower(host: address, port: port, user: "admin", password: "secret", timeout: .milliseconds(500))
            try await waitUntil("ipmi_sim on \(address):\(port)", timeout: .seconds(10), every: .milliseconds(200)) {
                (try? probe.powerStatus()) != nil
            }
        } catch {
            let log = (try? String(contentsOfFile: workdir.file("sim.log"), encoding: .utf8)) ?? ""
            bmc.stop()
            throw TimedOut(what: "ipmi_sim on \(address):\(port) to answer; its log: \(log)")
        }
        return bmc
    }

    public var target: BMCTarget { .lan(host: address, port: port, user: "admin", passwordFile: passwordFile) }

    /// This BMC as the coordinator's `fencing.bmcAddresses` names it.
    public var endpoint: String { "\(address):\(port)" }

    /// `fencing.bmcAddresses` for the coordinator config: fencing uses only configured addresses.
    public static func bmcAddresses(_ bmcs: [String: SimulatedBMC]) -> String {
        "bmcAddresses: {" + bmcs.sorted { $0.key < $1.key }.map { "\($0.key): \"\($0.value.endpoint)\"" }.joined(separator: ", ") + "}"
    }

    /// The agent config line that points at this BMC.
    public var agentConfigLine: String {
        "bmc: {mode: lan, host: \(address), port: \(port), user: admin, passwordFile: \(passwordFile)}"
    }

    public func collector(timeout: Duration = .seconds(2), logger: Logger = Logger(label: "test.ipmi")) -> IPMICollector {
        IPMICollector(target: target, sdrCacheDirectory: sdrCacheDirectory, logger: logger, timeout: timeout)
    }

    public func power() -> BMCPower {
        BMCPower(host: address, port: port, user: "admin", password: "secret", timeout: .seconds(2))
    }

    /// ipmi_sim polls this file every second for the CPU Temp reading.
    public func setCPUTemperature(_ celsius: Int) throws {
        try workdir.write("cputemp.val", "\(celsius)\n")
    }

    /// Clears the SEL with FreeIPMI's ipmi-sel, as an operator would.
    public func clearSEL() async throws {
        let result = try await run(which("ipmi-sel") ?? "/usr/sbin/ipmi-sel", [
            "-h", "\(address):\(port)", "-u", "admin", "-p", "secret", "-D", "LAN_2_0", "-W", "opensesspriv", "--clear",
        ])
        guard result.status == 0 else { throw TimedOut(what: "ipmi-sel --clear (exit \(result.status)): \(result.stderr)") }
    }

    /// SIGTERM, then SIGKILL after 5 s; waits until the process is gone (a zombie counts, as
    /// PID 1 here reaps late), then removes the workdir.
    public func stop() {
        kill(pid, SIGTERM)
        if !waitForExit(within: .seconds(5)) {
            kill(pid, SIGKILL)
            _ = waitForExit(within: .seconds(5))
        }
        workdir.remove()
    }

    private func waitForExit(within timeout: Duration) -> Bool {
        let end = ContinuousClock.now + timeout
        while ContinuousClock.now < end {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
            if stat.split(separator: ")").last?.split(separator: " ").first == "Z" { return true }
            usleep(20_000)
        }
        return false
    }
}
