import SpecolaClusterCore
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SpecolaJobs
import SpecolaProtocol
import SpecolaRaft
import SpecolaDevSupport
import SpecolaCoordinator

/// Scheduler throughput with the real commit path: three replicas in this
/// process, each with its own SQLite log, talking Raft over gRPC with mutual
/// TLS on loopback. Simulated nodes are registered through Raft; jobs are
/// submitted through Raft; then the leader's `JobController` plans and
/// commits placements in batches, exactly as in a running coordinator.
/// `specola-bench-scheduler` prints the result.
public enum SchedulerBenchmark {
    public struct Result: Sendable {
        public var nodes: Int
        public var tasks: Int
        public var placed: Int
        public var passes: Int
        public var planSeconds: Double
        public var totalSeconds: Double
        public var placementsPerSecond: Double { Double(placed) / totalSeconds }
    }

    public static func run(
        nodes nodeCount: Int, tasks taskCount: Int, jobs jobCount: Int = 10, hosts: [String] = ["127.0.0.11", "127.0.0.12", "127.0.0.13"],
        directory: String, logger: Logger
    ) async throws -> Result {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let pki = directory + "/pki"
        _ = try PKI.initCA(directory: pki)
        let members: [Specola_V1_Member] = try hosts.enumerated().map { index, host in
            let name = "c\(index + 1)"
            _ = try PKI.issue(directory: pki, role: .coordinator, name: name, sans: [host])
            return .with { $0.id = UInt64(index + 1); $0.name = name; $0.address = "\(host):\(LoopbackPort.free(on: host))" }
        }
        // Liveness never expires during the run: every simulated node stays ready.
        let thresholds = LivenessThresholds(suspectAfterMs: 3_600_000, downAfterMs: 7_200_000)
        var replicas: [Replica] = []
        var servers: [GRPCServer<HTTP2ServerTransport.Posix>] = []
        var transports: [PeerTransport] = []
        for member in members {
            let tls = TLSFiles(
                ca: pki + "/ca.pem", cert: PKI.certPath(directory: pki, role: .coordinator, name: member.name),
                key: PKI.keyPath(directory: pki, role: .coordinator, name: member.name))
            let transport = PeerTransport(selfID: member.id, tls: tls, logger: logger)
            var settings = Replica.Settings(id: member.id, name: member.name)
            settings.snapshotEvery = 1_000_000
            let replica = try Replica(
                settings: settings, storage: try RaftStorage(path: "\(directory)/\(member.name).sqlite"), peers: members,
                initialVoters: Set(members.map(\.id)), transport: transport, thresholds: thresholds, logger: logger)
            let endpoint = HostPort(parsing: member.address)!
            servers.append(GRPCServer(
                transport: .http2NIOPosix(
                    address: .ipv4(host: endpoint.host, port: endpoint.port), transportSecurity: tls.serverSecurity,
                    config: .defaults { $0.rpc.maxRequestPayloadSize = 64 * 1024 * 1024 }),
                services: [RaftPeerService(replica: replica, logger: logger)]))
            replicas.append(replica)
            transports.append(transport)
        }
        defer { transports.forEach { $0.stopAll() } }
        return try await withThrowingTaskGroup(of: Void.self) { group in
            for (server, replica) in zip(servers, replicas) {
                group.addTask { try await server.serve() }
                group.addTask { await replica.runTicker() }
            }
            defer {
                servers.forEach { $0.beginGracefulShutdown() }
                group.cancelAll()
            }
            let leader = try await waitForLeader(replicas)
            try await register(nodes: nodeCount, on: leader)
            try await submit(jobs: jobCount, tasks: taskCount, on: leader)
            return await measure(leader: leader, nodes: nodeCount, tasks: taskCount, logger: logger)
        }
    }

    static func waitForLeader(_ replicas: [Replica]) async throws -> Replica {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            for replica in replicas where await replica.isLeader {
                try await replica.readBarrier()
                return replica
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ReplicaError.timedOut
    }

    /// Nodes the size of the first users' servers: 48 cores, 380 GB, 250 TB.
    static func register(nodes count: Int, on leader: Replica) async throws {
        let now = WallClock.nowUnixMs()
        try await inParallel(count) { index in
            let name = "sim\(index)"
            _ = try await leader.propose(.registerNode(name: name, address: "", agentVersion: "sim", labels: ["rack": "r\(index % 16)"], autoAccept: true, atUnixMs: now))
            let report = Specola_V1_Report.with {
                $0.seq = 1
                $0.full = true
                $0.facts.capacity = .with {
                    $0.cpuCores = 48
                    $0.memoryBytes = 380_000_000_000
                    $0.labels = ["rack": "r\(index % 16)", SchedulingInput.scratchLabel: "250TB"]
                }
            }
            _ = try await leader.propose(.applyReport(node: name, report: report, receivedAtUnixMs: now))
        }
    }

    /// Jobs of one-core tasks, mixed memory sizes, a few spread, all runnable at once.
    static func submit(jobs: Int, tasks: Int, on leader: Replica) async throws {
        let perJob = max(1, tasks / jobs)
        for job in 0..<jobs {
            let task = TaskSpec(
                name: "work", driver: .exec(command: "/bin/true", args: []),
                resources: Resources(cpuMillicores: 1000, memoryBytes: Int64(1 + job % 4) << 30), count: perJob)
            let spec = JobSpec(
                kind: .job, metadata: JobMetadata(name: "bench\(job)", owner: "bench", project: "p\(job % 3)"),
                spread: job % 5 == 0, tasks: [task])
            let outcome = try await leader.propose(.submitJob(spec, by: "user/bench"))
            guard case .job = outcome else { throw ReplicaError.dropped("submit refused: \(outcome)") }
        }
    }

    /// Scheduling passes until everything is placed (or a pass places nothing).
    static func measure(leader: Replica, nodes: Int, tasks: Int, logger: Logger) async -> Result {
        let controller = JobController(replica: leader, hub: InstructionHub(logger: logger), logger: logger)
        let clock = ContinuousClock()
        let start = clock.now
        var passes = 0
        var planTime = Duration.zero
        var placed = 0
        while true {
            passes += 1
            planTime += await controller.pass()
            let now = await leader.replicatedState.jobs.allocations.count
            if now == placed { break }
            placed = now
            if placed >= tasks { break }
        }
        let total = clock.now - start
        return Result(
            nodes: nodes, tasks: tasks, placed: placed, passes: passes,
            planSeconds: planTime.seconds, totalSeconds: total.seconds)
    }

    static func inParallel(_ count: Int, width: Int = 256, _ body: @escaping @Sendable (Int) async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            while next < min(width, count) {
                let index = next
                group.addTask { try await body(index) }
                next += 1
            }
            while try await group.next() != nil {
                if next < count {
                    let index = next
                    group.addTask { try await body(index) }
                    next += 1
                }
            }
        }
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
