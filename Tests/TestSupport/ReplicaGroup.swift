import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SpecolaProtocol
import Synchronization
#if canImport(Glibc)
import Glibc
import SpecolaProcesses
#endif

/// A Raft group of real `specola-coordinator` processes on loopback, with its
/// own PKI, configs, data and logs in a temp dir, plus the faults a chaos test
/// needs: signals, restarts and iptables partitions.
///
/// Each group gets its own addresses (127.0.S.11, .12, ...; S differs per
/// group) and free ports. Loopback connections leave from 127.0.0.1 whatever
/// address the peer dials, so `-s A -d B` rules cannot tell replicas apart;
/// instead each replica runs with its own group id (via `setpriv`, still uid 0)
/// and a partition drops, in OUTPUT, that gid's packets to the other
/// replica's address. Every rule is tagged and removed in `shutdown()`.
public final class ReplicaGroup: @unchecked Sendable {
    /// One replica's fixed identity and files.
    public struct Member: Sendable {
        public var id: UInt64
        public var name: String
        public var endpoint: HostPort
        /// Where it takes the direct Raft channel (`raftAddress`).
        public var raftEndpoint: HostPort
        public var metrics: HostPort
        public var gid: Int
        public var configPath: String
        public var dataDir: String
        public var tls: TLSFiles
        public var peerLine: String { "{id: \(id), name: \(name), address: \(endpoint), raftAddress: \(raftEndpoint)}" }
        /// As a replica that predates the direct channel writes it.
        public var grpcOnlyPeerLine: String { "{id: \(id), name: \(name), address: \(endpoint)}" }
    }

    public let dir: TempDir
    public let pki: TestPKI
    public let admin: TLSFiles
    public let subnet: Int
    public let tickMs: Int
    public let electionTicks: Int
    /// `raft.snapshotEvery` in every config; nil keeps the coordinator's default.
    public let snapshotEvery: UInt64?
    public let pool: ClientPool
    private let lock = NSLock()
    private var members: [UInt64: Member] = [:]
    private var founders: [UInt64] = []
    private var processes: [UInt64: ChildProcess] = [:]
    private var incarnations: [UInt64: Int] = [:]
    private var rules: [[String]] = []
    private var retiredLogs: [String] = []
    private var others: [ChildProcess] = []
    private var dataGeneration = 0
    /// Commands that replica processes are started through, by id (e.g. `nsenter` into a mount namespace).
    private var launchers: [UInt64: [String]] = [:]
    private var processEnvironment: [String: String] = [:]
    public let ruleTag: String

    private static let nextSubnet = Atomic<Int>(0)

    /// Replicas configured as before the direct Raft channel: their configs name no `raftAddress`,
    /// so they neither listen for it nor dial it; the others dial them there and fall back to gRPC.
    private var grpcOnly: Set<UInt64>

    /// Prepares (but does not start) a group of `size` founding replicas.
    public init(size: Int, tickMs: Int = 30, electionTicks: Int = 10, snapshotEvery: UInt64? = nil,
                grpcOnly: Set<UInt64> = []) throws {
        self.snapshotEvery = snapshotEvery
        self.grpcOnly = grpcOnly
        removeStaleIptablesRules(tagPrefix: "specola-raft-test-")
        subnet = 60 + Self.nextSubnet.wrappingAdd(1, ordering: .relaxed).oldValue % 150
        self.tickMs = tickMs
        self.electionTicks = electionTicks
        ruleTag = "specola-raft-test-\(getpid())"
        dir = try TempDir("specola-raft")
        pki = try TestPKI(in: dir)
        admin = try pki.issue(.user, "admin")
        pool = ClientPool(tls: admin)
        founders = (1...UInt64(size)).map { $0 }
        for id in founders { _ = try addMember(id) }
        for id in founders { try writeConfig(id, join: false) }
    }

    /// Allocates addresses, a certificate and a data dir for replica `id`.
    @discardableResult
    public func addMember(_ id: UInt64) throws -> Member {
        let host = "127.0.\(subnet).\(10 + id)"
        let name = "c\(id)"
        let tls = try pki.issue(.coordinator, name, sans: [host])
        let ports = freePorts(3, host: host)
        let member = Member(
            id: id, name: name, endpoint: HostPort(host: host, port: ports[0]),
            raftEndpoint: HostPort(host: host, port: ports[1]),
            metrics: HostPort(host: host, port: ports[2]), gid: 40_000 + subnet * 100 + Int(id),
            configPath: dir.file("\(name).yaml"), dataDir: dir.file("data/\(name)"), tls: tls)
        lock.withLock { members[id] = member }
        return member
    }

    public func member(_ id: UInt64) -> Member { lock.withLock { members[id]! } }
    public var ids: [UInt64] { lock.withLock { members.keys.sorted() } }
    public var founderIDs: [UInt64] { founders }
    public var endpoints: [HostPort] { lock.withLock { members.values.sorted { $0.id < $1.id }.map(\.endpoint) } }

    /// Writes `cN.yaml`. A joining replica lists the founders and itself and starts empty.
    public func writeConfig(_ id: UInt64, join: Bool) throws {
        let me = member(id)
        let peerIDs = join ? founders + [id] : founders
        let old = lock.withLock { grpcOnly.contains(id) }
        let peers = peerIDs.map { "  - \(old ? member($0).grpcOnlyPeerLine : member($0).peerLine)" }
            .joined(separator: "\n")
        try dir.write("\(me.name).yaml", """
            name: \(me.name)
            id: \(id)
            listen: \(me.endpoint)
            metricsListen: \(me.metrics)
            dataDir: \(me.dataDir)
            join: \(join)
            raft: {tickMs: \(tickMs), electionTicks: \(electionTicks)\(snapshotEvery.map { ", snapshotEvery: \($0)" } ?? "")}
            heartbeatInterval: 0.5
            nodes: {autoAccept: true}
            access: {bootstrapAdmins: [admin]}
            tls: {ca: \(me.tls.ca), cert: \(me.tls.cert), key: \(me.tls.key)}
            peers:
            \(peers)
            """)
    }

    /// Upgrades a founder configured without the direct Raft channel: its config names every
    /// `raftAddress` from now on (it takes effect when it restarts).
    public func useDirectChannel(_ id: UInt64) throws {
        _ = lock.withLock { grpcOnly.remove(id) }
        try writeConfig(id, join: false)
    }

    /// Adds `text` (YAML at the top level) to every replica's config, before they start.
    public func appendToConfigs(_ text: String) throws {
        for id in ids {
            let path = member(id).configPath
            try (String(contentsOfFile: path, encoding: .utf8) + "\n" + text + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        }
    }

    /// Deletes replica `id`'s data dir (it must not run), so it starts empty.
    public func wipeDataDir(_ id: UInt64) throws {
        let path = member(id).dataDir
        if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
    }

    /// Points every founder at a fresh, empty data dir (for restore into a new group).
    public func useFreshDataDirs() throws {
        dataGeneration += 1
        for id in founders {
            lock.withLock { members[id]!.dataDir = dir.file("data\(dataGeneration)/\(members[id]!.name)") }
            try writeConfig(id, join: false)
        }
    }

    // MARK: - Processes

    /// Starts replica `id` through `launcher` from now on: `launcher + [setpriv ..., specola-coordinator ...]`.
    public func setLauncher(_ id: UInt64, _ launcher: [String]) { lock.withLock { launchers[id] = launcher } }

    /// Extra environment for every replica started from now on (e.g. the power-loss VFS switch).
    public func setEnvironment(_ environment: [String: String]) { lock.withLock { processEnvironment = environment } }

    public func process(_ id: UInt64) -> ChildProcess? { lock.withLock { processes[id] } }
    public func isRunning(_ id: UInt64) -> Bool { process(id)?.isRunning ?? false }

    /// Spawns replica `id` (without waiting for it to serve).
    @discardableResult
    public func spawn(_ id: UInt64) throws -> ChildProcess {
        let me = member(id)
        let incarnation = lock.withLock { () -> Int in
            incarnations[id, default: 0] += 1
            return incarnations[id]!
        }
        let command = lock.withLock { launchers[id] ?? [] } + [
            "/usr/bin/setpriv", "--regid=\(me.gid)", "--clear-groups", "--", BuiltProducts.path("specola-coordinator"), "--config", me.configPath,
        ]
        let process = try ChildProcess(
            name: "\(me.name)-run\(incarnation)", executable: command[0], arguments: Array(command.dropFirst()), logDirectory: dir.path,
            environment: lock.withLock { processEnvironment })
        lock.withLock {
            if let old = processes[id] { retiredLogs.append(old.logPath) }
            processes[id] = process
        }
        return process
    }

    /// Starts replica `id` and waits until its gRPC server listens.
    public func start(_ id: UInt64, timeout: Duration = .seconds(20)) async throws {
        let process = try spawn(id)
        try await waitUntil("\(member(id).name) to serve (log: \(process.logPath))", timeout: timeout, every: .milliseconds(20)) {
            guard process.isRunning else { throw ReplicaDied(log: process.log) }
            return process.log.contains("coordinator ready")
        }
    }

    public func startAll() async throws {
        for id in founders { _ = try spawn(id) }
        for id in founders {
            let process = self.process(id)!
            try await waitUntil("\(member(id).name) to serve (log: \(process.logPath))", every: .milliseconds(20)) {
                guard process.isRunning else { throw ReplicaDied(log: process.log) }
                return process.log.contains("coordinator ready")
            }
        }
        _ = try await waitForLeader()
    }

    /// Sends `signal` and, unless it is SIGSTOP/SIGCONT, waits until the process is gone and reaped.
    public func kill(_ id: UInt64, signal: Int32 = SIGKILL) async throws {
        guard let process = process(id) else { return }
        if signal == SIGSTOP || signal == SIGCONT {
            process.signal(signal)
            return
        }
        try await process.stop(signal, timeout: .seconds(15))
    }

    /// kill -9 of several replicas at the same instant, then waits for all of them.
    public func killAll(_ ids: [UInt64]) async throws {
        let targets = ids.compactMap { process($0) }
        for process in targets { process.signal(SIGKILL) }
        for process in targets { _ = try await process.waitForExit(timeout: .seconds(10)) }
    }

    public func restart(_ id: UInt64) async throws {
        if isRunning(id) { try await kill(id) }
        try await start(id)
    }

    public func pause(_ id: UInt64) { process(id)?.signal(SIGSTOP) }
    public func resume(_ id: UInt64) { process(id)?.signal(SIGCONT) }

    // MARK: - Network faults

    /// Drops Raft (and any other) traffic between replicas `a` and `b`, both ways.
    public func partition(_ a: UInt64, _ b: UInt64) throws {
        try dropOneWay(from: a, to: b)
        try dropOneWay(from: b, to: a)
    }

    /// Drops what replica `from` sends to replica `to`; the other direction still works.
    public func dropOneWay(from: UInt64, to: UInt64) throws {
        let spec = ["OUTPUT", "-d", member(to).endpoint.host, "-m", "owner", "--gid-owner", "\(member(from).gid)",
                    "-m", "comment", "--comment", ruleTag, "-j", "DROP"]
        let result = try runBlocking(Self.iptables, ["-w", "-A"] + spec)
        guard result.status == 0 else { throw IptablesFailed(arguments: spec, stderr: result.stderr) }
        lock.withLock { rules.append(spec) }
    }

    /// Cuts `id` off from every other replica (clients can still reach it).
    public func isolate(_ id: UInt64) throws {
        for other in ids where other != id { try partition(id, other) }
    }

    /// Removes every rule this group added.
    public func heal() {
        let added = lock.withLock { () -> [[String]] in
            defer { rules.removeAll() }
            return rules
        }
        for spec in added.reversed() { _ = try? runBlocking(Self.iptables, ["-w", "-D"] + spec) }
    }

    public var activeRules: Int { lock.withLock { rules.count } }

    public static let iptables = which("iptables") ?? "/usr/sbin/iptables"

    // MARK: - Observation

    /// `Status` of one replica, with a short deadline.
    public func status(_ id: UInt64, timeout: Duration = .milliseconds(800)) async throws -> Specola_V1_StatusResponse {
        try await pool.call(member(id).endpoint, timeout: timeout) { client, options in
            try await Specola_V1_ClusterAPI.Client(wrapping: client).status(.init(), options: options)
        }
    }

    /// The replica that says it leads with the highest term, among those that answer.
    public func leader() async -> UInt64? {
        var best: (id: UInt64, term: UInt64)?
        await withTaskGroup(of: (UInt64, Specola_V1_StatusResponse?).self) { group in
            for id in ids where isRunning(id) {
                group.addTask { (id, try? await self.status(id)) }
            }
            for await (id, status) in group {
                guard let status, status.role == "leader" else { continue }
                if best == nil || status.raftTerm > best!.term { best = (id, status.raftTerm) }
            }
        }
        return best?.id
    }

    /// Waits until a replica other than `excluded` leads, and returns it.
    public func waitForLeader(excluding excluded: Set<UInt64> = [], timeout: Duration = .seconds(20)) async throws -> UInt64 {
        var found: UInt64?
        try await waitUntil("a leader other than \(excluded.sorted())", timeout: timeout, every: .milliseconds(50)) {
            found = await leader()
            return found.map { !excluded.contains($0) } ?? false
        }
        return found!
    }

    /// A KV client that follows leader redirects across this group's replicas.
    public func kvClient(attemptTimeout: Duration = .milliseconds(1500)) -> KVClient {
        KVClient(pool: pool, endpoints: endpoints, attemptTimeout: attemptTimeout)
    }

    /// Environment for the `specola` CLI, pointed at replica `id`.
    public func cliEnvironment(_ id: UInt64) -> [String: String] {
        ["SPECOLA_ADDR": member(id).endpoint.description, "SPECOLA_CACERT": admin.ca,
         "SPECOLA_CLIENT_CERT": admin.cert, "SPECOLA_CLIENT_KEY": admin.key]
    }

    public func cli(_ arguments: [String], via id: UInt64) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await run(BuiltProducts.path("specola"), arguments, environment: cliEnvironment(id), timeout: .seconds(30))
    }

    /// The last lines of every replica log, for a failure report.
    public func logTails(lines: Int = 30) -> String {
        let paths = lock.withLock { retiredLogs + processes.values.map(\.logPath) + others.map(\.logPath) }.sorted()
        return paths.map { path in
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            let all = text.split(separator: "\n", omittingEmptySubsequences: false)
            // A crash report's registers and images fill any tail: its first lines say what failed.
            let crash = all.firstIndex { $0.contains("Fatal error") || $0.contains("Program crashed") }
                .map { "\n(crash report, first lines)\n" + all[$0...].prefix(25).joined(separator: "\n") + "\n(last lines)" } ?? ""
            return "--- \(path)\(crash)\n\(all.suffix(lines).joined(separator: "\n"))"
        }.joined(separator: "\n")
    }

    /// Makes `shutdown()` stop `process` too (an agent started beside the group).
    public func track(_ process: ChildProcess) { lock.withLock { others.append(process) } }

    /// Removes partitions, stops every process this group started (by PID), closes clients, deletes the temp dir.
    public func shutdown() async {
        heal()
        pool.close()
        let all = lock.withLock { others + Array(processes.values) }
        for process in all { process.signal(SIGKILL) }
        for process in all { _ = try? await process.waitForExit(timeout: .seconds(10)) }
        dir.remove()
    }

    /// Runs `body` with a started group; cleans up whatever happens and prints the logs on failure.
    public static func with<T>(
        size: Int, start: Bool = true, environment: [String: String] = [:], snapshotEvery: UInt64? = nil,
        _ body: (ReplicaGroup) async throws -> T
    ) async throws -> T {
        let group = try ReplicaGroup(size: size, snapshotEvery: snapshotEvery)
        group.setEnvironment(environment)
        do {
            if start { try await group.startAll() }
            let result = try await body(group)
            await group.shutdown()
            return result
        } catch {
            FileHandle.standardError.write(Data("replica group failed: \(error)\n\(group.logTails())\n".utf8))
            await group.shutdown()
            throw error
        }
    }
}

/// An iptables command that did not succeed.
public struct IptablesFailed: Error, CustomStringConvertible {
    public var arguments: [String]
    public var stderr: String
    public var description: String { "iptables \(arguments.joined(separator: " ")) failed: \(stderr)" }
    public init(arguments: [String], stderr: String) {
        self.arguments = arguments
        self.stderr = stderr
    }
}

/// A child process exited while the test waited for it.
public struct ReplicaDied: Error, CustomStringConvertible {
    public var log: String
    public init(log: String) { self.log = log }
    public var description: String { "process exited early; log:\n\(log)" }
}

// MARK: - gRPC clients

/// One long-lived gRPC client per address, with mutual TLS as the admin user.
/// Reconnects quickly after a replica restarts; RPCs fail fast while it is down.
public final class ClientPool: Sendable {
    let tls: TLSFiles
    private let clients = Mutex<[HostPort: (GRPCClient<HTTP2ClientTransport.Posix>, Task<Void, Never>)]>([:])

    public init(tls: TLSFiles) { self.tls = tls }

    public func client(_ endpoint: HostPort) throws -> GRPCClient<HTTP2ClientTransport.Posix> {
        try clients.withLock { clients in
            if let existing = clients[endpoint] { return existing.0 }
            let transport = try HTTP2ClientTransport.Posix(
                target: .ipv4(address: endpoint.host, port: endpoint.port),
                transportSecurity: tls.clientSecurity(serverHost: endpoint.host),
                config: .defaults {
                    $0.backoff.initial = .milliseconds(50)
                    $0.backoff.max = .milliseconds(300)
                    $0.connection.maxIdleTime = nil
                })
            let client = GRPCClient(transport: transport)
            let task = Task { _ = try? await client.runConnections() }
            clients[endpoint] = (client, task)
            return client
        }
    }

    /// One RPC with a deadline, on the pooled client for `endpoint`.
    public func call<T: Sendable>(
        _ endpoint: HostPort, timeout: Duration,
        _ body: (GRPCClient<HTTP2ClientTransport.Posix>, CallOptions) async throws -> T
    ) async throws -> T {
        var options = CallOptions.defaults
        options.timeout = timeout
        options.waitForReady = false
        return try await body(try client(endpoint), options)
    }

    public func close() {
        let all = clients.withLock { clients in
            defer { clients.removeAll() }
            return Array(clients.values)
        }
        for (client, task) in all {
            client.beginGracefulShutdown()
            task.cancel()
        }
    }
}

/// What became of one client request.
public enum CallResult<T: Sendable>: Sendable {
    case ok(T)
    /// The cluster said no before doing anything (follower refusal, superseded, never sent).
    case refused(String)
    /// No answer: a write may or may not have happened.
    case unknown(String)

    public var value: T? { if case .ok(let value) = self { value } else { nil } }
}

/// A KV client as a chaos test needs it: follows the leader, retries only when
/// the request certainly did not happen, and reports an unknown outcome otherwise.
public struct KVClient: Sendable {
    let pool: ClientPool
    let endpoints: [HostPort]
    let attemptTimeout: Duration

    public init(pool: ClientPool, endpoints: [HostPort], attemptTimeout: Duration) {
        self.pool = pool
        self.endpoints = endpoints
        self.attemptTimeout = attemptTimeout
    }

    /// Errors that prove the request was not executed.
    static func certainlyNotExecuted(_ error: RPCError) -> Bool {
        switch error.code {
        case .aborted:
            return true  // superseded by another leader's entry, or dropped by Raft
        case .resourceExhausted:
            // The leader refused it for now (too much uncommitted), before executing anything.
            return error.metadata[stringValues: "specola-not-executed"].contains { _ in true }
        case .unavailable:
            if error.metadata[stringValues: "specola-leader"].first(where: { _ in true }) != nil { return true }
            let neverSent = ["no leader is known", "not the leader", "transient failure", "isn't ready",
                             "subchannel is unavailable", "Could not establish", "shutting down", "is shutdown",
                             "channel is closed", "executed nothing"]
            return neverSent.contains { error.message.contains($0) }
        default:
            return false
        }
    }

    /// Runs `body` against the leader until it answers, the request is refused
    /// for good, or `deadline` passes. Only certain refusals are retried, and for a `readOnly`
    /// call any failure: a read changes nothing, so asking again cannot do anything twice.
    public func call<T: Sendable>(
        deadline: Duration = .seconds(4), startAt hint: HostPort? = nil, readOnly: Bool = false,
        _ body: @Sendable (GRPCClient<HTTP2ClientTransport.Posix>, CallOptions) async throws -> T
    ) async -> CallResult<T> {
        let end = ContinuousClock.now + deadline
        var target = hint ?? endpoints[Int.random(in: 0..<endpoints.count)]
        var lastRefusal = "no attempt"
        while ContinuousClock.now < end {
            let remaining = end - ContinuousClock.now
            do {
                return .ok(try await pool.call(target, timeout: min(attemptTimeout, remaining), body))
            } catch let error as RPCError {
                guard readOnly || Self.certainlyNotExecuted(error) else { return .unknown("\(target): \(error.code): \(error.message)") }
                lastRefusal = "\(target): \(error.code): \(error.message)"
                if let leader = error.metadata[stringValues: "specola-leader"].compactMap({ HostPort(parsing: $0) }).first,
                    leader != target
                {
                    target = leader
                    continue
                }
            } catch {
                guard readOnly else { return .unknown("\(target): \(error)") }
                lastRefusal = "\(target): \(error)"
            }
            target = endpoints[(endpoints.firstIndex(of: target).map { $0 + 1 } ?? 0) % endpoints.count]
            try? await Task.sleep(for: .milliseconds(30))
        }
        return .refused("deadline passed; last refusal: \(lastRefusal)")
    }

    public func put(_ key: String, _ value: String, deadline: Duration = .seconds(4)) async -> CallResult<Specola_V1_KvWriteResponse> {
        await call(deadline: deadline) { client, options in
            try await Specola_V1_KV.Client(wrapping: client).put(
                .with { $0.key = key; $0.value = Data(value.utf8) }, options: options)
        }
    }

    public func compareAndSwap(_ key: String, expected: String, new: String,
                               deadline: Duration = .seconds(4)) async -> CallResult<Specola_V1_KvWriteResponse> {
        await call(deadline: deadline) { client, options in
            try await Specola_V1_KV.Client(wrapping: client).compareAndSwap(
                .with { $0.key = key; $0.expectedValue = Data(expected.utf8); $0.newValue = Data(new.utf8) }, options: options)
        }
    }

    /// A linearizable read (unless `stale`, which any replica answers from its own state); `.ok(nil)` means the key is absent.
    public func get(_ key: String, stale: Bool = false, deadline: Duration = .seconds(4)) async -> CallResult<String?> {
        await call(deadline: deadline, readOnly: true) { client, options in
            let response = try await Specola_V1_KV.Client(wrapping: client).get(.with { $0.key = key; $0.stale = stale }, options: options)
            return response.found ? String(decoding: response.kv.value, as: UTF8.self) : nil
        }
    }

    public func list(prefix: String, deadline: Duration = .seconds(10)) async -> CallResult<[String: String]> {
        await call(deadline: deadline, readOnly: true) { client, options in
            let response = try await Specola_V1_KV.Client(wrapping: client).list(.with { $0.prefix = prefix }, options: options)
            return Dictionary(response.kvs.map { ($0.key, String(decoding: $0.value, as: UTF8.self)) }, uniquingKeysWith: { a, _ in a })
        }
    }
}
