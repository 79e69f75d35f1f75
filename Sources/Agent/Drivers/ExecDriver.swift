import Foundation
import Logging
import SpecolaProtocol

/// Runs a task as a plain process on the node, for tools installed on the
/// host. Limits are what works without owning a cgroup: address-space and
/// process-count rlimits through prlimit(1), and a wall-clock timeout.
public struct ExecDriver: Sendable {
    let logger: Logger

    public init(logger: Logger) {
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
        environment["SPECOLA_ALLOCATION_ID"] = task.allocationID
        do {
            let result = try await runProcess(
                path, args, environment: environment, timeout: task.timeout ?? .seconds(365 * 24 * 3600), onSpawn: onSpawn)
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
}
