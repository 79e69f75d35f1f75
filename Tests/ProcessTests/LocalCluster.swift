import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SpecolaProtocol
import SwiftProtobuf
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Real `specola-coordinator` and `specola-agent` processes on loopback
/// addresses, with their own PKI, configs and logs in a temp dir.
final class LocalCluster: @unchecked Sendable {
    let dir: TempDir
    let pki: TestPKI
    let coordinator: HostPort
    let metrics: HostPort
    let admin: TLSFiles
    private(set) var coordinatorProcess: ChildProcess?
    private(set) var agents: [String: ChildProcess] = [:]

    /// `aliases`: more addresses the coordinator's certificate names (for agents that reach it through a NAT alias).
    /// `workloadHostPaths`: HA pods may mount host directories under this cluster's temp dir (ledgers).
    /// `autoAccept`: nodes join without `specola node accept` (the coordinator's `nodes.autoAccept`).
    init(coordinatorHost: String = "127.0.0.11", aliases: [String] = [], suspectAfter: Double = 3, downAfter: Double = 10,
         workloadHostPaths: Bool = false, autoAccept: Bool = true, extraConfig: String = "",
         access: String = "{bootstrapAdmins: [admin]}") throws {
        dir = try TempDir("specola-cluster")
        pki = try TestPKI(in: dir)
        let ports = freePorts(2, host: coordinatorHost)
        coordinator = HostPort(host: coordinatorHost, port: ports[0])
        metrics = HostPort(host: coordinatorHost, port: ports[1])
        try pki.issue(.coordinator, "c1", sans: [coordinatorHost] + aliases)
        admin = try pki.issue(.user, "admin")
        try dir.write("coordinator.yaml", """
            name: c1
            listen: \(coordinator)
            metricsListen: \(metrics)
            dataDir: \(dir.file("data/c1"))
            suspectAfter: \(suspectAfter)
            downAfter: \(downAfter)
            nodes: {autoAccept: \(autoAccept)}
            access: \(access)
            tls: {ca: \(pki.directory)/ca.pem, cert: \(pki.directory)/coordinator-c1.pem, key: \(pki.directory)/coordinator-c1-key.pem}
            \(workloadHostPaths ? "workloads: {hostPathPrefixes: [\(dir.path)]}" : "")
            \(extraConfig)
            """)
    }

    func startCoordinator() async throws {
        let process = try ChildProcess(
            name: "coordinator", executable: BuiltProducts.path("specola-coordinator"),
            arguments: ["--config", dir.file("coordinator.yaml")], logDirectory: dir.path)
        coordinatorProcess = process
        try await waitUntil("coordinator to serve (log: \(process.logPath))") {
            guard process.isRunning else { throw ProcessDied(log: process.log) }
            return process.log.contains("coordinator ready") && process.log.contains("became leader")
        }
    }

    /// Writes `NAME.yaml` for an agent; `extra` lines are appended verbatim.
    @discardableResult
    func writeAgentConfig(_ name: String, address: String, reportInterval: Double = 1, rack: String = "r1",
                          coordinatorAddress: HostPort? = nil, extra: String = "") throws -> String {
        try pki.issue(.node, name, sans: [address])
        try dir.write("\(name).yaml", """
            nodeName: \(name)
            coordinators: [\(coordinatorAddress ?? coordinator)]
            address: \(address)
            dataDir: \(dir.file("data/\(name)"))
            heartbeatInterval: 0.5
            reportInterval: \(reportInterval)
            labels: {rack: \(rack)}
            tls: {ca: \(pki.directory)/ca.pem, cert: \(pki.directory)/node-\(name).pem, key: \(pki.directory)/node-\(name)-key.pem}
            \(extra)
            """)
        return dir.file("\(name).yaml")
    }

    /// Starts an agent; with `gid`, under that group id, so iptables can cut its traffic (`--gid-owner`).
    func startAgent(_ name: String, environment: [String: String] = [:], gid: Int? = nil) throws {
        let agent = BuiltProducts.path("specola-agent")
        let arguments = ["--config", dir.file("\(name).yaml")]
        agents[name] = try ChildProcess(
            name: "agent-\(name)", executable: gid == nil ? agent : "/usr/bin/setpriv",
            arguments: gid.map { ["--regid=\($0)", "--clear-groups", "--", agent] + arguments } ?? arguments,
            logDirectory: dir.path, environment: environment)
    }

    var cliEnvironment: [String: String] {
        var env: [String: String] = [:]
        env["SPECOLA_ADDR"] = coordinator.description
        env["SPECOLA_CACERT"] = admin.ca
        env["SPECOLA_CLIENT_CERT"] = admin.cert
        env["SPECOLA_CLIENT_KEY"] = admin.key
        return env
    }

    func cli(_ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await run(BuiltProducts.path("specola"), arguments, environment: cliEnvironment)
    }

    /// The CLI with another user's certificate.
    func cli(as user: TLSFiles, _ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        var env = cliEnvironment
        env["SPECOLA_CLIENT_CERT"] = user.cert
        env["SPECOLA_CLIENT_KEY"] = user.key
        return try await run(BuiltProducts.path("specola"), arguments, environment: env)
    }

    func nodes() async throws -> [Specola_V1_Node] {
        let result = try await cli(["nodes", "--json"])
        guard result.status == 0 else { throw CLIFailed(result: result) }
        return try Specola_V1_ListNodesResponse(jsonString: result.stdout).nodes
    }

    func node(_ name: String) async throws -> Specola_V1_Node? {
        try await nodes().first { $0.name == name }
    }

    /// For a failed wait: each node as the coordinator sees it, and the last lines of each process's log.
    func diagnosis() async -> String {
        let logLines = 25
        var text = ""
        do {
            for node in try await nodes() {
                text += "node \(node.name): status \(node.shownStatus) (\(node.statusReason)), reports applied \(node.reportsApplied), "
                text += "libvirt \(node.facts.vms.available ? "available" : "unavailable: \(node.facts.vms.reason)")\n"
            }
        } catch {
            text += "nodes: \(error)\n"
        }
        let processes = [("coordinator", coordinatorProcess)] + agents.sorted { $0.key < $1.key }.map { ("agent \($0.key)", Optional($0.value)) }
        for case let (name, process?) in processes {
            let tail = process.log.split(separator: "\n", omittingEmptySubsequences: false).suffix(logLines).joined(separator: "\n")
            text += "--- \(name) (\(process.isRunning ? "running" : "exited")), last \(logLines) log lines:\n\(tail)\n"
        }
        return text
    }

    /// Runs `body`, then stops every process this cluster started (by PID), removes the containers of
    /// `jobs` (agents leave running tasks alone when they stop) and then the temp dir, whether `body`
    /// threw or not: a task still writing into the dir (a job's ledger) would make its removal fail.
    /// `before` runs first (e.g. removing iptables rules). Nothing here blocks the concurrency pool.
    func withCleanup<T>(
        removingContainersOf jobs: [String] = [], before: () -> Void = {}, _ body: () async throws -> T
    ) async throws -> T {
        let result: Result<T, any Error>
        do { result = .success(try await body()) } catch { result = .failure(error) }
        before()
        await stopProcesses()
        for job in jobs { await TestPodman.removeContainers(job: job) }
        dir.remove()
        return try result.get()
    }

    func shutdown() async {
        await stopProcesses()
        dir.remove()
    }

    private func stopProcesses() async {
        for agent in agents.values { try? await agent.stop() }
        try? await coordinatorProcess?.stop()
    }
}

/// Runs `body` with a gRPC client that dials `target` as `tls`'s identity.
func withClient<T: Sendable>(_ tls: TLSFiles, _ target: HostPort,
                             _ body: @escaping @Sendable (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> T) async throws -> T {
    let transport = try HTTP2ClientTransport.Posix(
        target: .ipv4(address: target.host, port: target.port), transportSecurity: tls.clientSecurity(serverHost: target.host))
    return try await withGRPCClient(transport: transport, handleClient: body)
}

struct ProcessDied: Error, CustomStringConvertible {
    var log: String
    var description: String { "process exited early; log:\n\(log)" }
}

struct CLIFailed: Error, CustomStringConvertible {
    var result: (status: Int32, stdout: String, stderr: String)
    var description: String { "specola exited \(result.status): \(result.stderr)" }
}
