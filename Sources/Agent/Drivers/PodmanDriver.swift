import Foundation
import Logging
import SpecolaProtocol
import SpecolaProcesses

/// Runs tasks as podman containers that exist only for the task: create with
/// limits and Specola labels, start, wait, keep the exit code and output,
/// remove. Containers are named after their allocation, so an agent that
/// restarts re-attaches to a container still running instead of starting a second one.
///
/// Containers run with every capability dropped but the node's allow-list, with
/// no-new-privileges, as the node's container user, and mount only host paths the
/// node allows. Environment values never reach a command line: they go through a
/// 0600 `--env-file` removed once the container exists, and values with line breaks
/// (which an env file cannot hold) through podman secrets removed when the task ends.
public struct PodmanDriver: Sendable {
    public static let managedLabel = "org.specola.managed"
    public static let allocationLabel = "org.specola.allocation"
    /// The node whose agent owns the container: agents sharing one podman (dev, tests) never touch each other's.
    public static let nodeLabel = "org.specola.node"
    let podmanPath: String
    let environment: [String: String]
    let nodeName: String
    let policy: TaskPolicy
    let logger: Logger
    /// Where podman runs. conmon writes an empty file named `oom` into its working directory when
    /// a container is killed for memory, so podman must not run in the agent's (or a test's) own.
    let workingDirectory: String

    public init(podmanPath: String = "podman", environment: [String: String] = [:], nodeName: String, policy: TaskPolicy = TaskPolicy(),
                workingDirectory: String = NSTemporaryDirectory() + "specola-podman-\(getuid())", logger: Logger) {
        self.workingDirectory = workingDirectory
        self.podmanPath = podmanPath
        self.environment = environment
        self.nodeName = nodeName
        self.policy = policy
        self.logger = logger
    }

    public static func containerName(_ allocationID: String) -> String { "specola-\(allocationID)" }

    /// Runs the task to its end (or re-attaches to it). The container is removed
    /// at the end unless `keepContainer`: then the caller removes it once the
    /// outcome is stored, so a crash in between cannot lose the fact that it ran.
    /// `onStarted` runs once the container exists and is being started (or was found).
    public func run(_ task: TaskLaunch, keepContainer: Bool = false, onStarted: (@Sendable () -> Void)? = nil) async throws -> TaskOutcome {
        let name = Self.containerName(task.allocationID)
        let state = try await containerState(name)
        let outcome: TaskOutcome
        if state == nil || state == "created" || state == "configured" {
            if state == nil {
                if let refusal = task.mounts.lazy.compactMap({ policy.mountRefusal($0.source) }).first {
                    return TaskOutcome(ending: .failedToStart, exitCode: -1, stdout: "", stderr: "", message: refusal)
                }
                let created = try await create(task, name: name)
                guard created.status == 0 else {
                    return TaskOutcome(ending: .failedToStart, exitCode: -1, stdout: "", stderr: created.stderr,
                                       message: "podman create failed: \(created.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
                }
            }
            onStarted?()
            outcome = try await startAttached(name, task: task)
        } else {
            logger.info("re-attaching to an existing task container", metadata: ["allocation.id": "\(task.allocationID)", "container.state": "\(state!)"])
            onStarted?()
            outcome = try await waitDetached(name, task: task)
        }
        // The container has ended: nothing reads its secrets again.
        await removeSecrets(of: task)
        if !keepContainer { await remove(name) }
        return outcome
    }

    /// The usual path: one `podman start --attach` starts the container and exits with its
    /// exit code; the output is then read from the container's log.
    private func startAttached(_ name: String, task: TaskLaunch) async throws -> TaskOutcome {
        let limit = task.timeout ?? Self.noTimeout
        let result: (status: Int32, stdout: String, stderr: String)
        do {
            result = try await podman(["start", "--attach", name], timeout: limit, keepingLast: TaskOutcome.retainedOutput)
        } catch ProcessRunnerError.timedOut {
            return await stopAfterTimeout(name, task: task)
        }
        var exitCode = result.status
        // 125: podman itself failed (or the task chose 125); the container's record says which.
        if exitCode == 125 {
            let recorded = try await inspectExitCode(name)
            let neverRan = try await containerState(name) == "created"
            if recorded == nil || neverRan {
                return TaskOutcome(ending: .failedToStart, exitCode: -1, stdout: "", stderr: result.stderr,
                                   message: "podman start failed: \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
            exitCode = recorded ?? exitCode
        }
        // `start --attach` can miss the output of a container that ends before it attaches
        // (seen: an `echo` task reported nothing); the container's log holds all of it.
        if let logs = try? await podman(["logs", name], timeout: .seconds(30), keepingLast: TaskOutcome.retainedOutput), logs.status == 0 {
            return Self.exited(exitCode, stdout: logs.stdout, stderr: logs.stderr)
        }
        return Self.exited(exitCode, stdout: result.stdout, stderr: result.stderr)
    }

    /// After an agent restart: the container runs (or ran) without us; wait for it and read its logs.
    private func waitDetached(_ name: String, task: TaskLaunch) async throws -> TaskOutcome {
        let waited = try? await podman(["wait", name], timeout: task.timeout ?? Self.noTimeout)
        if waited == nil { return await stopAfterTimeout(name, task: task) }
        let exitCode = try await inspectExitCode(name) ?? -1
        let logs = try? await podman(["logs", name], timeout: .seconds(30), keepingLast: TaskOutcome.retainedOutput)
        return Self.exited(exitCode, stdout: logs?.stdout ?? "", stderr: logs?.stderr ?? "")
    }

    private func stopAfterTimeout(_ name: String, task: TaskLaunch) async -> TaskOutcome {
        _ = try? await podman(["stop", "--time", "5", name], timeout: .seconds(30))
        let logs = try? await podman(["logs", name], timeout: .seconds(30), keepingLast: TaskOutcome.retainedOutput)
        return TaskOutcome(ending: .timedOut, exitCode: 124, stdout: TaskOutcome.tail(logs?.stdout ?? ""),
                           stderr: TaskOutcome.tail(logs?.stderr ?? ""), message: "stopped after the task's timeout of \(task.timeout ?? .zero)")
    }

    private static func exited(_ exitCode: Int32, stdout: String, stderr: String) -> TaskOutcome {
        let message = exitCode == 137 ? "killed (exit 137: out of memory or SIGKILL)" : "exited with \(exitCode)"
        return TaskOutcome(ending: .exited, exitCode: exitCode, stdout: TaskOutcome.tail(stdout), stderr: TaskOutcome.tail(stderr), message: message)
    }

    static let noTimeout = Duration.seconds(365 * 24 * 3600)

    /// Allocation ids of Specola containers on this node (running or not), for re-attaching after a restart.
    public func managedAllocations() async throws -> [String: String] {
        let listed = try await podman(
            ["ps", "-a", "--filter", "label=\(Self.managedLabel)=true", "--filter", "label=\(Self.nodeLabel)=\(nodeName)", "--format", "json"],
            timeout: .seconds(30))
        guard listed.status == 0 else { throw DriverError("podman ps failed: \(listed.stderr)") }
        guard let containers = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]] else {
            throw DriverError("podman ps printed something other than a JSON list")
        }
        var result: [String: String] = [:]
        for container in containers {
            if let labels = container["Labels"] as? [String: String], let id = labels[Self.allocationLabel] {
                result[id] = (container["State"] as? String) ?? "unknown"
            }
        }
        return result
    }

    /// Creates the task's container; its environment goes in through files that exist only meanwhile.
    func create(_ task: TaskLaunch, name: String) async throws -> (status: Int32, stdout: String, stderr: String) {
        let single = task.environment.filter { !Self.needsSecret($0.value) }
        let environmentFile = try PrivateFile(contents: single.keys.sorted().map { "\($0)=\(single[$0]!)\n" }.joined())
        defer { environmentFile.remove() }
        for (key, value) in task.environment where Self.needsSecret(value) {
            let secret = Self.secretName(task.allocationID, key)
            let file = try PrivateFile(contents: value)
            defer { file.remove() }
            // One left by an agent that died between this and `podman create` is replaced.
            _ = try? await podman(["secret", "rm", secret], timeout: .seconds(30))
            let made = try await podman(["secret", "create", "--label", "\(Self.allocationLabel)=\(task.allocationID)", secret, file.path],
                                        timeout: .seconds(30))
            guard made.status == 0 else { return made }
        }
        return try await podman(createArguments(task, name: name, environmentFile: environmentFile.path), timeout: .seconds(60))
    }

    func createArguments(_ task: TaskLaunch, name: String, environmentFile: String) -> [String] {
        var args = ["create", "--name", name,
                    "--label", "\(Self.managedLabel)=true", "--label", "\(Self.allocationLabel)=\(task.allocationID)",
                    "--label", "\(Self.nodeLabel)=\(nodeName)",
                    "--network", task.network, "--pull", task.pull,
                    "--cap-drop=ALL", "--security-opt", "no-new-privileges"]
        for capability in policy.capabilities { args += ["--cap-add", capability] }
        if !policy.containerUser.isEmpty { args += ["--user", policy.containerUser] }
        if let cpus = task.cpus { args += ["--cpus", String(format: "%.3f", cpus)] }
        if let memory = task.memoryBytes { args += ["--memory", "\(memory)b", "--memory-swap", "\(memory)b"] }
        if let pids = task.pidsLimit { args += ["--pids-limit", "\(pids)"] }
        args += ["--env-file", environmentFile]
        for (key, value) in task.environment.sorted(by: { $0.key < $1.key }) where Self.needsSecret(value) {
            args += ["--secret", "\(Self.secretName(task.allocationID, key)),type=env,target=\(key)"]
        }
        for mount in task.mounts {
            args += ["--volume", "\(mount.source):\(mount.target):\(mount.readOnly ? "ro" : "rw")"]
        }
        // `--` ends podman's options: whatever the image says, it is never read as a flag.
        return args + ["--", task.image] + task.command
    }

    /// An env file holds one line per variable; a value with a line break goes in as a secret.
    static func needsSecret(_ value: String) -> Bool { value.contains("\n") || value.contains("\r") }

    static func secretName(_ allocationID: String, _ key: String) -> String { "specola-\(allocationID)-\(key)" }

    func removeSecrets(of task: TaskLaunch) async {
        for (key, value) in task.environment where Self.needsSecret(value) {
            _ = try? await podman(["secret", "rm", Self.secretName(task.allocationID, key)], timeout: .seconds(30))
        }
    }

    func containerState(_ name: String) async throws -> String? {
        let inspected = try await podman(["container", "inspect", "--format", "{{.State.Status}}", name], timeout: .seconds(30))
        guard inspected.status == 0 else { return nil }
        return inspected.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The host pid of a running allocation's container init, for a kill that needs no podman call.
    public func containerPID(allocationID: String) async -> pid_t? {
        let inspected = try? await podman(
            ["container", "inspect", "--format", "{{.State.Pid}}", Self.containerName(allocationID)], timeout: .seconds(30))
        guard let text = inspected?.stdout.trimmingCharacters(in: .whitespacesAndNewlines), let pid = pid_t(text), pid > 0 else { return nil }
        return pid
    }

    func inspectExitCode(_ name: String) async throws -> Int32? {
        let inspected = try await podman(["container", "inspect", "--format", "{{.State.ExitCode}}", name], timeout: .seconds(30))
        return Int32(inspected.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Retried with longer timeouts: on a loaded machine `podman rm` can take longer than 30 s, and a
    /// container left behind would stay until the agent restarts.
    @discardableResult
    func remove(_ name: String) async -> Bool {
        var problem = ""
        for timeout in [30, 60, 120] {
            do {
                let result = try await podman(["rm", "--force", "--ignore", "--time", "5", name], timeout: .seconds(timeout))
                if result.status == 0 { return true }
                problem = result.stderr
            } catch {
                problem = "\(error)"
            }
        }
        logger.error("cannot remove a finished task's container; the agent's sweep tries again, or remove it by hand with `podman rm --force NAME`",
                     metadata: ["container": "\(name)", "error": "\(problem)"])
        return false
    }

    /// Removes an allocation's container, whatever its state; false when podman could not.
    @discardableResult
    public func remove(allocationID: String) async -> Bool {
        await remove(Self.containerName(allocationID))
    }

    /// Asks an allocation's container to stop (SIGTERM, then SIGKILL after `grace`); `run` then returns.
    public func stop(allocationID: String, grace: Int = 10) async {
        _ = try? await podman(["stop", "--time", "\(grace)", Self.containerName(allocationID)], timeout: .seconds(grace + 30))
    }

    func podman(_ args: [String], timeout: Duration, keepingLast: Int? = nil) async throws -> (status: Int32, stdout: String, stderr: String) {
        try? FileManager.default.createDirectory(atPath: workingDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let result = try await runProcess(podmanPath, args, environment: environment, timeout: timeout, keepingLast: keepingLast,
                                          workingDirectory: workingDirectory)
        return (result.status, String(decoding: result.stdout, as: UTF8.self), String(decoding: result.stderr, as: UTF8.self))
    }
}

/// A root-only (0600) temporary file for values that must not appear on a command line.
struct PrivateFile {
    let path: String

    init(contents: String) throws {
        path = FileManager.default.temporaryDirectory.path + "/specola-\(UUID().uuidString)"
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw DriverError("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bytes = Array(contents.utf8)
        guard bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == bytes.count else {
            unlink(path)
            throw DriverError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }

    func remove() { unlink(path) }
}

/// A driver could not do what it was asked.
public struct DriverError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Tasks in containers, followed to their end; the container is kept until the runner has stored
/// the outcome, then removed (or swept later).
extension PodmanDriver: WorkDriver {
    public func start(_ work: DriverWork, adopting: Bool) async throws -> DriverStart {
        guard case .task(let launch) = work else { throw DriverError("HA pods run through the pod driver, not as tasks") }
        // Adopting re-attaches: `run` finds the container by its allocation's name.
        return await Self.following { running in
            try await run(launch, keepContainer: true) { running([]) }
        }
    }

    public func stop(_ name: String, immediately: Bool, processes: [ProcessIdentity]) async throws {
        await stop(allocationID: name, grace: immediately ? 0 : 10)
    }

    public func observe(_ names: [String]) async throws -> [String: WorkObservation] {
        let listed = try await managedAllocations()
        return Dictionary(uniqueKeysWithValues: names.map { name in
            (name, listed[name].map { $0 == "running" ? WorkObservation.running : .stopped($0) } ?? .stopped("gone (no such container)"))
        })
    }

    /// A container in any state is adopted: one that has exited still holds the task's outcome.
    /// When podman cannot list them, none is taken to have survived.
    public func survival(of names: [String]) async throws -> [String: Survival] {
        let listed = (try? await managedAllocations()) ?? [:]
        return Dictionary(uniqueKeysWithValues: names.map { ($0, listed[$0] == nil ? Survival.gone("no container") : .adoptable) })
    }

    /// The container's init: killing it kills everything in its pid namespace.
    public func processes(of name: String) async -> [ProcessIdentity] {
        guard let pid = await containerPID(allocationID: name), let process = ProcessIdentity(pid: pid) else { return [] }
        return [process]
    }

    public func leftovers() async throws -> [String] { Array(try await managedAllocations().keys) }

    public func removeLeftovers(of name: String) async -> Bool { await remove(allocationID: name) }
}
