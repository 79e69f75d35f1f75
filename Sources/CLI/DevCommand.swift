import ArgumentParser
import Foundation
import GRPCCore
import SpecolaProtocol
#if canImport(Glibc)
import Glibc
import SpecolaProcesses
import SpecolaDevSupport
#endif

/// `specola dev`: a complete local cluster in one command, like `nomad agent -dev`.
/// Every process it starts is stopped by PID on Ctrl-C.
struct DevCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "Start a local cluster: a PKI, a coordinator and N agents on loopback addresses.")

    @Option(help: "Working directory for certificates, configs, data and logs.")
    var dir: String = "specola-dev"

    @Option(help: "Number of agents (1-50).")
    var agents: Int = 3

    @Option(help: "Number of coordinator replicas (1, 3 or 5).")
    var replicas: Int = 3

    @Option(help: "Seconds to wait for every agent to report before giving up.")
    var readyTimeout: Double = 60

    @Flag(help: "Print the connection settings as one JSON object instead of export lines.")
    var json = false

    func validate() throws {
        guard (1...50).contains(agents) else { throw ValidationError("--agents must be between 1 and 50") }
        guard [1, 3, 5].contains(replicas) else { throw ValidationError("--replicas must be 1, 3 or 5") }
    }

    func run() async throws {
        let root = URL(fileURLWithPath: dir).standardizedFileURL.path
        let cluster = DevCluster(root: root, agents: agents, replicas: replicas)
        do {
            try cluster.prepare()
            await cluster.prepareSampleImage()
            try cluster.start()
        } catch {
            cluster.stopAll()
            FileHandle.standardError.write(Data("specola dev: \(error)\n".utf8))
            throw ExitCode(1)
        }
        DevCluster.installStopHandler(cluster)
        if json {
            let data = (try? JSONSerialization.data(withJSONObject: cluster.environment, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(cluster.exportLines)
        }
        print("# coordinators: \(cluster.coordinatorList) (any replica works; the CLI follows the leader)")
        print("# logs: \(root)/logs   stop: Ctrl-C")
        fflush(nil)
        let ready = await cluster.waitUntilReported(timeout: readyTimeout)
        print(ready ? "# all \(agents) agents reported; try: specola nodes" : "# not every agent reported within \(Int(readyTimeout))s; see \(root)/logs")
        if cluster.storageStarted {
            let nodes = (1...cluster.storage.peers).map { "node\($0)" }.joined(separator: ", ")
            print("# storage: GlusterFS volume \(DevStorage.volume), replica \(cluster.storage.peers), bricks on \(nodes); try: specola volumes; specola volume show \(DevStorage.volume); specola volume heal \(DevStorage.volume)")
        }
        if ready, FileManager.default.fileExists(atPath: cluster.samplePipeline) {
            print(await cluster.runSampleAsMember())
        } else if FileManager.default.fileExists(atPath: cluster.samplePipeline) {
            print("# sample pipeline (8-way fan-out, then fan-in): specola job run \(cluster.samplePipeline)")
        }
        fflush(nil)
        await cluster.waitForever()
    }
}

/// The processes and files behind `specola dev`.
final class DevCluster: @unchecked Sendable {
    let root: String
    let agents: Int
    let replicas: Int
    let storage: DevStorage
    private let lock = NSLock()
    private var children: [(name: String, pid: pid_t)] = []
    private var storageUp = false

    init(root: String, agents: Int, replicas: Int) {
        self.root = root
        self.agents = agents
        self.replicas = replicas
        storage = DevStorage(root: root, agents: agents)
    }

    var storageStarted: Bool { lock.withLock { storageUp } }

    func coordinatorAddress(_ index: Int) -> HostPort { HostPort(host: "127.0.0.\(10 + index)", port: 7450) }
    var coordinator: HostPort { coordinatorAddress(1) }
    var coordinatorList: String { (1...replicas).map { coordinatorAddress($0).description }.joined(separator: ", ") }

    var pki: String { root + "/pki" }
    var podmanConf: String { root + "/config/podman-containers.conf" }
    var samplePipeline: String { root + "/samples/reduce-pipeline.yaml" }
    static let sampleImage = "localhost/specola-mini"
    func agentAddress(_ index: Int) -> String { "127.0.1.\(index)" }

    /// What the CLI needs to talk to this cluster.
    var environment: [String: String] {
        [
            // Every replica: the CLI goes on to the next one when one does not answer.
            "SPECOLA_ADDR": (1...replicas).map { coordinatorAddress($0).description }.joined(separator: ","),
            "SPECOLA_CACERT": pki + "/ca.pem",
            "SPECOLA_CLIENT_CERT": pki + "/user-admin.pem",
            "SPECOLA_CLIENT_KEY": pki + "/user-admin-key.pem",
        ]
    }

    var exportLines: String {
        environment.keys.sorted().map { "export \($0)=\(environment[$0]!)" }.joined(separator: "\n")
    }

    /// Certificates and configs; reuses an existing PKI so restarts keep their data.
    func prepare() throws {
        let fm = FileManager.default
        for sub in ["logs", "config", "data"] {
            try fm.createDirectory(atPath: "\(root)/\(sub)", withIntermediateDirectories: true)
        }
        if !fm.fileExists(atPath: pki + "/ca.pem") {
            _ = try PKI.initCA(directory: pki, commonName: PKI.defaultCAName, validityDays: PKI.defaultCADays)
        }
        _ = try PKI.issue(directory: pki, role: .user, name: "admin", sans: [], validityDays: 30)
        // The sample project's member, who runs the sample pipeline.
        _ = try PKI.issue(directory: pki, role: .user, name: Self.sampleMember, sans: [], validityDays: 30)
        let peers = (1...replicas).map {
            "  - {id: \($0), name: c\($0), address: \(coordinatorAddress($0)), raftAddress: \(coordinatorAddress($0).host):7451}"
        }.joined(separator: "\n")
        // The simulated BMCs all take admin/secret: the coordinator can fence through them.
        let bmcSimulated = resolveExecutable("ipmi_sim") != nil && Self.findFixture("Tests/Fixtures/ipmi/start-bmc.sh") != nil
        if bmcSimulated { try write("bmc/password", "secret\n") }
        // Fencing trusts only BMC addresses from the coordinator's configuration, one per node.
        let bmcAddresses = (1...agents).map { "node\($0): \"\(agentAddress($0)):9623\"" }.joined(separator: ", ")
        let fencing = bmcSimulated ? "fencing: {bmc: {user: admin, passwordFile: \(root)/bmc/password}, bmcAddresses: {\(bmcAddresses)}}" : ""

        for index in 1...replicas {
            let address = coordinatorAddress(index)
            _ = try PKI.issue(directory: pki, role: .coordinator, name: "c\(index)", sans: [address.host, "localhost"], validityDays: 30)
            try write("config/c\(index).yaml", """
                name: c\(index)
                id: \(index)
                listen: \(address)
                metricsListen: \(address.host):9450
                dataDir: \(root)/data/c\(index)
                nodes: {autoAccept: true}
                access: {bootstrapAdmins: [admin]}
                tls: {ca: \(pki)/ca.pem, cert: \(pki)/coordinator-c\(index).pem, key: \(pki)/coordinator-c\(index)-key.pem}
                peers:
                \(peers)
                \(fencing)
                """)
        }
        // runc and explicit ulimits: the container settings known to work on a plain host (see testbeds/podman).
        try write("config/podman-containers.conf", """
            [containers]
            default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
            [engine]
            runtime = "runc"
            events_logger = "file"
            """)
        if let sample = Self.findFixture("Sources/Jobs/Samples/reduce-pipeline.yaml") {
            try fm.createDirectory(atPath: root + "/archive", withIntermediateDirectories: true)
            let text = try String(contentsOfFile: sample, encoding: .utf8)
                .replacingOccurrences(of: "source: /srv/archive", with: "source: \(root)/archive")
            try write("samples/reduce-pipeline.yaml", text)
        }
        let bmcScript = Self.findFixture("Tests/Fixtures/ipmi/start-bmc.sh")
        for index in 1...agents {
            let name = "node\(index)"
            _ = try PKI.issue(directory: pki, role: .node, name: name, sans: [agentAddress(index)], validityDays: 30)
            var bmc = "bmc: {mode: none}"
            if let bmcScript, resolveExecutable("ipmi_sim") != nil {
                try write("bmc/\(name)/password", "secret\n")
                bmc = "bmc: {mode: lan, host: \(agentAddress(index)), port: 9623, user: admin, passwordFile: \(root)/bmc/\(name)/password}"
                _ = bmcScript
            }
            try write("config/\(name).yaml", """
                nodeName: \(name)
                coordinators: [\(coordinatorList)]
                address: \(agentAddress(index))
                dataDir: \(root)/data/\(name)
                reportInterval: 2
                labels: {rack: dev, index: "\(index)"}
                tls: {ca: \(pki)/ca.pem, cert: \(pki)/node-\(name).pem, key: \(pki)/node-\(name)-key.pem}
                \(bmc)
                \(storage.agentConfigLine(index))
                libvirt: {uri: "test:///default"}
                podman: {containersConf: \(podmanConf)}
                tasks: {mountPrefixes: [\(root)/archive], exec: {enabled: true, user: \(Self.execUser)}}
                """)
        }
    }

    /// Exec tasks run as nobody, or as the developer when `specola dev` is not root (it cannot switch user then).
    static var execUser: String { geteuid() == 0 ? "nobody" : "\(geteuid())" }

    /// The busybox image the sample pipeline runs in, built locally (no registry).
    func prepareSampleImage() async {
        guard resolveExecutable("podman") != nil else {
            print("# podman not found: agents cannot run container tasks (apt-get install podman runc)")
            return
        }
        do {
            try await BusyboxImage.ensure(Self.sampleImage, podmanEnvironment: ["CONTAINERS_CONF": podmanConf])
        } catch {
            print("# the sample image \(Self.sampleImage) could not be built: \(error)")
        }
    }

    func start() throws {
        let binDir = URL(fileURLWithPath: Self.executablePath()).deletingLastPathComponent().path
        if let bmcScript = Self.findFixture("Tests/Fixtures/ipmi/start-bmc.sh"), resolveExecutable("ipmi_sim") != nil {
            for index in 1...agents {
                let output = try Self.capture("/bin/bash", [bmcScript, "\(root)/bmc/node\(index)", agentAddress(index), "9623"])
                if let pid = pid_t(output.trimmingCharacters(in: .whitespacesAndNewlines)) {
                    track("bmc-node\(index)", pid)
                }
            }
        } else {
            print("# ipmi_sim or its scripts not found: agents run without a BMC (apt-get install openipmi)")
        }
        for index in 1...replicas {
            try spawn("coordinator-c\(index)", binDir + "/specola-coordinator", ["--config", root + "/config/c\(index).yaml"])
        }
        startStorage()
        for index in 1...agents {
            try spawn("agent-node\(index)", binDir + "/specola-agent", ["--config", root + "/config/node\(index).yaml"])
        }
    }

    /// The GlusterFS pool and volume, before the agents; without them the cluster still starts.
    private func startStorage() {
        if let reason = storage.unavailableReason {
            print("# no GlusterFS storage: \(reason); the cluster runs without it")
            return
        }
        do {
            try storage.start()
            lock.withLock { storageUp = true }
        } catch {
            storage.stop(removingBricks: false)
            print("# GlusterFS storage did not start: \(error)\n#   the cluster runs without it; glusterd's logs: \(storage.directory)/p*/log")
        }
    }

    static let sampleMember = "astronomer"
    static let sampleProject = "survey"

    func connection(as user: String) -> ConnectionOptions {
        var options = try! ConnectionOptions.parse([])
        options.addr = coordinator.description
        options.cacert = pki + "/ca.pem"
        options.clientCert = pki + "/user-\(user).pem"
        options.clientKey = pki + "/user-\(user)-key.pem"
        return options
    }

    /// As the admin, creates the sample project with its member (once); as that member, submits
    /// the sample pipeline. Returns what to tell the user.
    func runSampleAsMember() async -> String {
        let admin = connection(as: "admin")
        let member = connection(as: Self.sampleMember)
        let project = Specola_V1_Project.with {
            $0.name = Self.sampleProject
            $0.members = [Self.sampleMember]
            $0.archiveMounts = [root + "/archive"]
            $0.maxPriority = 60
            $0.maxCpuMillicores = Int64(agents) * 64_000
        }
        do {
            _ = try await admin.withAccess { try await $0.createProject(project) }
        } catch let error as RPCError where error.code == .failedPrecondition {
            // Created by an earlier run of `specola dev` in this directory.
        } catch {
            return "# the sample project could not be created: \(error)"
        }
        let yaml = (try? String(contentsOfFile: samplePipeline, encoding: .utf8)) ?? ""
        let request = Specola_V1_SubmitJobRequest.with { $0.yaml = yaml; $0.fileName = samplePipeline }
        let env = "SPECOLA_CLIENT_CERT=\(pki)/user-\(Self.sampleMember).pem SPECOLA_CLIENT_KEY=\(pki)/user-\(Self.sampleMember)-key.pem"
        do {
            let job = try await member.withJobs { try await $0.submit(request) }
            return "# sample pipeline \(job.id) submitted as user/\(Self.sampleMember) (project \(Self.sampleProject)): specola job status \(job.id)\n# act as that member: \(env) specola ..."
        } catch {
            return "# the sample pipeline was not submitted as user/\(Self.sampleMember): \(error); run it yourself: \(env) specola job run \(samplePipeline)"
        }
    }

    func waitUntilReported(timeout: Double) async -> Bool {
        let options = connection(as: "admin")
        let deadline = Date().addingTimeInterval(timeout)
        let expected = agents
        while Date() < deadline {
            let reported = try? await options.withAPI { api in
                try await api.listNodes(.init()).nodes.filter { $0.reportsApplied > 0 }.count
            }
            if let reported, reported >= expected { return true }
            try? await Task.sleep(for: .milliseconds(500))
        }
        return false
    }

    func waitForever() async {
        while true { try? await Task.sleep(for: .seconds(3600)) }
    }

    private func spawn(_ name: String, _ path: String, _ arguments: [String]) throws {
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw CLIError("\(path) not found; build it first with `swift build`")
        }
        let log = root + "/logs/\(name).log"
        let fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        guard fd >= 0 else { throw CLIError("cannot write \(log)") }
        defer { close(fd) }
        track(name, try spawnProcess(path, arguments, stdout: fd, stderr: fd))
    }

    private func track(_ name: String, _ pid: pid_t) {
        lock.withLock { children.append((name, pid)) }
    }

    /// SIGTERM to everything started, in reverse order, then SIGKILL after 5 s.
    func stopAll() {
        let all = lock.withLock { children.reversed() }
        for child in all { kill(child.pid, SIGTERM) }
        let deadline = Date().addingTimeInterval(5)
        for child in all {
            while Date() < deadline && Self.isAlive(child.pid) { usleep(50_000) }
            if Self.isAlive(child.pid) { kill(child.pid, SIGKILL) }
        }
        if lock.withLock({ storageUp }) {
            storage.stop(removingBricks: true)
            lock.withLock { storageUp = false }
        }
    }

    static func isAlive(_ pid: pid_t) -> Bool {
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid { return false }
        return kill(pid, 0) == 0
    }

    private func write(_ relative: String, _ text: String) throws {
        let path = root + "/" + relative
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try (text + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    }

    nonisolated(unsafe) private static var stopping: DevCluster?
    nonisolated(unsafe) private static var signalSources: [any DispatchSourceSignal] = []

    static func installStopHandler(_ cluster: DevCluster) {
        stopping = cluster
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                print("\n# stopping the dev cluster")
                cluster.stopAll()
                exit(0)
            }
            source.resume()
            signalSources.append(source)
        }
    }

    static func executablePath() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// Walks up from the executable to find a file of the source tree (dev runs from a checkout).
    static func findFixture(_ relative: String) -> String? {
        var url = URL(fileURLWithPath: executablePath()).deletingLastPathComponent()
        for _ in 0..<6 {
            let candidate = url.appendingPathComponent(relative).path
            if FileManager.default.fileExists(atPath: candidate) { return candidate }
            url.deleteLastPathComponent()
        }
        let installed = "/usr/share/specola/" + relative
        return FileManager.default.fileExists(atPath: installed) ? installed : nil
    }

    static func capture(_ path: String, _ arguments: [String]) throws -> String {
        let result = try runProcessBlocking(path, arguments, timeout: .seconds(30))
        guard result.status == 0 else {
            throw CLIError("\(path) \(arguments.joined(separator: " ")) exited with \(result.status): \(String(decoding: result.stderr, as: UTF8.self))")
        }
        return String(decoding: result.stdout, as: UTF8.self)
    }
}
