import Foundation
import Logging
import SpecolaProtocol

/// Runs tasks as podman containers that exist only for the task: create with
/// limits and Specola labels, start, wait, keep the exit code and output,
/// remove. Containers are named after their allocation, so an agent that
/// restarts re-attaches to a container still running instead of starting a second one.
public struct PodmanDriver: Sendable {
    public static let managedLabel = "org.specola.managed"
    public static let allocationLabel = "org.specola.allocation"
    let podmanPath: String
    let environment: [String: String]
    let logger: Logger

    public init(podmanPath: String = "podman", environment: [String: String] = [:], logger: Logger) {
        self.podmanPath = podmanPath
        self.environment = environment
        self.logger = logger
    }

    public static func containerName(_ allocationID: String) -> String { "specola-\(allocationID)" }

    /// Runs the task to its end (or re-attaches to it). The container is removed
    /// at the end unless `keepContainer`: then the caller removes it once the
    /// outcome is stored, so a crash in between cannot lose the fact that it ran.
    /// `onStarted` runs once the container is known to run (started, or found running).
    public func run(_ task: TaskSpec, keepContainer: Bool = false, onStarted: (@Sendable () -> Void)? = nil) async throws -> TaskOutcome {
        let name = Self.containerName(task.allocationID)
        let state = try await containerState(name)
        if state == nil {
            let created = try await podman(createArguments(task, name: name), timeout: .seconds(60))
            guard created.status == 0 else {
                return TaskOutcome(ending: .failedToStart, exitCode: -1, stdout: "", stderr: created.stderr,
                                   message: "podman create failed: \(created.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
        } else {
            logger.info("re-attaching to an existing task container", metadata: ["allocation.id": "\(task.allocationID)", "container.state": "\(state!)"])
        }
        if state == nil || state == "created" || state == "configured" {
            let started = try await podman(["start", name], timeout: .seconds(60))
            guard started.status == 0 else {
                let outcome = TaskOutcome(ending: .failedToStart, exitCode: -1, stdout: "", stderr: started.stderr,
                                          message: "podman start failed: \(started.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
                await remove(name)
                return outcome
            }
        }
        onStarted?()
        var ending = TaskOutcome.Ending.exited
        let waitLimit = task.timeout ?? .seconds(365 * 24 * 3600)
        let waited = try? await podman(["wait", name], timeout: waitLimit)
        if waited == nil {
            ending = .timedOut
            _ = try? await podman(["stop", "--time", "5", name], timeout: .seconds(30))
        }
        let exitCode = try await inspectExitCode(name) ?? -1
        let logs = try? await podman(["logs", name], timeout: .seconds(30))
        if !keepContainer { await remove(name) }
        let message = ending == .timedOut
            ? "stopped after the task's timeout of \(task.timeout!)"
            : (exitCode == 137 ? "killed (exit 137: out of memory or SIGKILL)" : "exited with \(exitCode)")
        return TaskOutcome(ending: ending, exitCode: exitCode, stdout: TaskOutcome.tail(logs?.stdout ?? ""),
                           stderr: TaskOutcome.tail(logs?.stderr ?? ""), message: message)
    }

    /// Allocation ids of Specola containers on this node (running or not), for re-attaching after a restart.
    public func managedAllocations() async throws -> [String: String] {
        let listed = try await podman(["ps", "-a", "--filter", "label=\(Self.managedLabel)=true", "--format", "json"], timeout: .seconds(30))
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

    func createArguments(_ task: TaskSpec, name: String) -> [String] {
        var args = ["create", "--name", name,
                    "--label", "\(Self.managedLabel)=true", "--label", "\(Self.allocationLabel)=\(task.allocationID)",
                    "--network", task.network, "--pull", task.pull]
        if let cpus = task.cpus { args += ["--cpus", String(format: "%.3f", cpus)] }
        if let memory = task.memoryBytes { args += ["--memory", "\(memory)b", "--memory-swap", "\(memory)b"] }
        if let pids = task.pidsLimit { args += ["--pids-limit", "\(pids)"] }
        for key in task.environment.keys.sorted() { args += ["--env", "\(key)=\(task.environment[key]!)"] }
        for mount in task.mounts {
            args += ["--volume", "\(mount.source):\(mount.target):\(mount.readOnly ? "ro" : "rw")"]
        }
        return args + [task.image] + task.command
    }

    func containerState(_ name: String) async throws -> String? {
        let inspected = try await podman(["container", "inspect", "--format", "{{.State.Status}}", name], timeout: .seconds(30))
        guard inspected.status == 0 else { return nil }
        return inspected.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func inspectExitCode(_ name: String) async throws -> Int32? {
        let inspected = try await podman(["container", "inspect", "--format", "{{.State.ExitCode}}", name], timeout: .seconds(30))
        return Int32(inspected.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    func remove(_ name: String) async {
        _ = try? await podman(["rm", "--force", "--time", "5", name], timeout: .seconds(30))
    }

    /// Removes an allocation's container, whatever its state.
    public func remove(allocationID: String) async {
        await remove(Self.containerName(allocationID))
    }

    /// Asks an allocation's container to stop (SIGTERM, then SIGKILL after `grace`); `run` then returns.
    public func stop(allocationID: String, grace: Int = 10) async {
        _ = try? await podman(["stop", "--time", "\(grace)", Self.containerName(allocationID)], timeout: .seconds(grace + 30))
    }

    func podman(_ args: [String], timeout: Duration) async throws -> (status: Int32, stdout: String, stderr: String) {
        let result = try await runProcess(podmanPath, args, environment: environment, timeout: timeout)
        return (result.status, String(decoding: result.stdout, as: UTF8.self), String(decoding: result.stderr, as: UTF8.self))
    }
}

/// A driver could not do what it was asked.
public struct DriverError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
