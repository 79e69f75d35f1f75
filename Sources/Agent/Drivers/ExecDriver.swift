import Foundation
import Logging
import SpecolaProtocol

/// Runs a task as a plain process on the node, for tools installed on the
/// host. Limits are what works without owning a cgroup: address-space and
/// process-count rlimits through prlimit(1), and a wall-clock timeout.
///
/// Each task runs in a process group of its own, so a stop, a timeout or a self-fence
/// reaches everything it started. Every process of a task carries `SPECOLA_ALLOCATION_ID`
/// and `SPECOLA_NODE` in its environment, so an agent that restarts finds and kills what
/// a crashed predecessor left running before it reports the task lost.
public struct ExecDriver: Sendable {
    let nodeName: String
    let logger: Logger

    public init(nodeName: String, logger: Logger) {
        self.nodeName = nodeName
        self.logger = logger
    }

    /// Runs the task to its end. `onSpawn` learns the process id, so a stop can signal it.
    public func run(_ task: TaskSpec, onSpawn: (@Sendable (pid_t) -> Void)? = nil) async throws -> TaskOutcome {
        guard let executable = task.command.first else {
            return TaskOutcome(ending: .failedToStart, exitCode: -1, stdout: "", stderr: "", message: "the task has no command")
        }
        guard let resolved = resolveExecutable(executable) else {
            return TaskOutcome(ending: .failedToStart, exitCode: -1, stdout: "", stderr: "",
                               message: "\(executable) is not installed on this node (not found in PATH)")
        }
        var limits: [String] = []
        if let memory = task.memoryBytes { limits.append("--as=\(memory)") }
        if let pids = task.pidsLimit { limits.append("--nproc=\(pids)") }
        let (path, args) = limits.isEmpty || resolveExecutable("prlimit") == nil
            ? (resolved, Array(task.command.dropFirst()))
            : ("prlimit", limits + ["--", resolved] + Array(task.command.dropFirst()))
        var environment = task.environment
        environment[Self.allocationVariable] = task.allocationID
        environment[Self.nodeVariable] = nodeName
        do {
            let result = try await runProcess(
                path, args, environment: environment, timeout: task.timeout ?? .seconds(365 * 24 * 3600),
                ownProcessGroup: true, keepingLast: TaskOutcome.retainedOutput, onSpawn: onSpawn)
            let code = result.status
            return TaskOutcome(
                ending: .exited, exitCode: code,
                stdout: TaskOutcome.tail(String(decoding: result.stdout, as: UTF8.self)),
                stderr: TaskOutcome.tail(String(decoding: result.stderr, as: UTF8.self)),
                message: "exited with \(code)")
        } catch ProcessRunnerError.timedOut(_, let limit) {
            return TaskOutcome(ending: .timedOut, exitCode: 137, stdout: "", stderr: "", message: "killed after the task's timeout of \(limit)")
        }
    }

    static let allocationVariable = "SPECOLA_ALLOCATION_ID"
    static let nodeVariable = "SPECOLA_NODE"

    /// Processes of the task `allocationID` started on this node that are still alive,
    /// found by their environment in /proc.
    public func survivors(of allocationID: String) -> [pid_t] {
        let wanted: Set<String> = ["\(Self.allocationVariable)=\(allocationID)", "\(Self.nodeVariable)=\(nodeName)"]
        let own = getpid()
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap { pid_t($0) } ?? []
        return pids.filter { pid in
            guard pid != own, let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
            let variables = Set(environ.split(separator: 0).map { String(decoding: $0, as: UTF8.self) })
            return wanted.isSubset(of: variables)
        }
    }

    /// SIGKILLs every surviving process of the task, with its process group, until none is
    /// left; returns how many it killed, or nil when some still live after `timeout`.
    public func killSurvivors(of allocationID: String, timeout: Duration = .seconds(10)) async -> Int? {
        var killed: Set<pid_t> = []
        let deadline = ContinuousClock.now + timeout
        while true {
            let alive = survivors(of: allocationID)
            if alive.isEmpty { return killed.count }
            guard ContinuousClock.now < deadline else { return nil }
            for pid in alive {
                let group = getpgid(pid)
                if group > 1 && group != getpgrp() { kill(-group, SIGKILL) }
                kill(pid, SIGKILL)
                killed.insert(pid)
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }
}
