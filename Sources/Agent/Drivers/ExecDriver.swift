import Foundation
import Logging
import SpecolaProtocol
import SpecolaProcesses

/// Runs a task as a plain process on the node, for tools installed on the
/// host, where the node's configuration enables it (`tasks.exec`). The process
/// runs as the configured unprivileged account (through setpriv, with
/// no-new-privileges and no supplementary groups) and with a clean environment:
/// PATH, HOME, the task's own variables and Specola's. Limits are what works
/// without owning a cgroup: address-space and process-count rlimits through
/// prlimit(1), and a wall-clock timeout.
///
/// Each task runs in a process group of its own, so a stop, a timeout or a self-fence
/// reaches everything it started. Every process of a task carries `SPECOLA_ALLOCATION_ID`
/// and `SPECOLA_NODE` in its environment, so an agent that restarts finds and kills what
/// a crashed predecessor left running before it reports the task lost.
public struct ExecDriver: Sendable {
    let nodeName: String
    let policy: ExecPolicy
    let logger: Logger

    public init(nodeName: String, policy: ExecPolicy = ExecPolicy(), logger: Logger) {
        self.nodeName = nodeName
        self.policy = policy
        self.logger = logger
    }

    /// The search path exec tasks get, whatever the agent's own is.
    static let searchPath = "/usr/local/bin:/usr/bin:/bin"

    /// Runs the task to its end. `onSpawn` learns the process id, so a stop can signal it.
    public func run(_ task: TaskLaunch, onSpawn: (@Sendable (pid_t) -> Void)? = nil) async throws -> TaskOutcome {
        func refused(_ message: String) -> TaskOutcome {
            TaskOutcome(ending: .failedToStart, exitCode: -1, stdout: "", stderr: "", message: message)
        }
        guard policy.enabled else {
            return refused("exec tasks are disabled on node \(nodeName); set tasks.exec.enabled: true in its agent's configuration to allow them, or use driver: podman")
        }
        guard let executable = task.command.first else { return refused("the task has no command") }
        guard let account = Account(policy.user) else {
            return refused("the account '\(policy.user)' that exec tasks run as does not exist on node \(nodeName); create it or change tasks.exec.user in its agent's configuration")
        }
        var environment = ["PATH": Self.searchPath, "HOME": account.home].merging(task.environment) { $1 }
        environment[Self.allocationVariable] = task.allocationID
        environment[Self.nodeVariable] = nodeName
        guard let resolved = resolveExecutable(executable, environment: environment) else {
            return refused("\(executable) is not installed on this node (not found in PATH)")
        }
        var wrappers: [String] = []
        if account.uid != geteuid() {
            guard geteuid() == 0 else {
                return refused("the agent runs as uid \(geteuid()) and cannot switch to '\(policy.user)'; run it as root or set tasks.exec.user to its own account")
            }
            guard let setpriv = resolveExecutable("setpriv") else {
                return refused("setpriv (util-linux) is not installed on node \(nodeName); exec tasks need it to run as '\(policy.user)'")
            }
            wrappers += [setpriv, "--reuid=\(account.uid)", "--regid=\(account.gid)", "--clear-groups", "--no-new-privs", "--"]
        }
        var limits: [String] = []
        if let memory = task.memoryBytes { limits.append("--as=\(memory)") }
        if let pids = task.pidsLimit { limits.append("--nproc=\(pids)") }
        if !limits.isEmpty, let prlimit = resolveExecutable("prlimit") { wrappers += [prlimit] + limits + ["--"] }
        let command = wrappers + [resolved] + Array(task.command.dropFirst())
        do {
            let result = try await runProcess(
                command[0], Array(command.dropFirst()), environment: environment, timeout: task.timeout ?? .seconds(365 * 24 * 3600),
                ownProcessGroup: true, inheritEnvironment: false, keepingLast: TaskOutcome.retainedOutput, onSpawn: onSpawn)
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

    /// The account exec tasks run as, from the node's user database (a bare uid needs no entry).
    struct Account {
        var uid: uid_t
        var gid: gid_t
        var home: String

        init?(_ user: String) {
            if let entry = UInt32(user).flatMap({ getpwuid($0) }) ?? getpwnam(user) {
                uid = entry.pointee.pw_uid
                gid = entry.pointee.pw_gid
                home = String(cString: entry.pointee.pw_dir)
            } else if let number = UInt32(user) {
                uid = number
                gid = number
                home = "/"
            } else {
                return nil
            }
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

/// Tasks as plain processes, followed to their end. They cannot be re-attached after an agent
/// restart (their output pipes died with the agent): survivors are killed and the task is lost.
extension ExecDriver: WorkDriver {
    public func start(_ work: DriverWork, adopting: Bool) async throws -> DriverStart {
        guard case .task(let launch) = work else { throw DriverError("an HA workload cannot run as an exec task") }
        return await Self.following { running in
            try await run(launch) { pid in
                // Taken at once, before the process can end and its pid be reused.
                running(ProcessIdentity(pid: pid).map { [$0] } ?? [])
            }
        }
    }

    /// Signals the task's process group: SIGTERM, or SIGKILL `immediately`; `run` then returns.
    public func stop(_ name: String, immediately: Bool, processes: [ProcessIdentity]) async throws {
        for process in processes { process.signal(immediately ? SIGKILL : SIGTERM, group: true) }
    }

    public var processesLeadGroups: Bool { true }

    public func observe(_ names: [String]) async throws -> [String: WorkObservation] {
        Dictionary(uniqueKeysWithValues: names.map { ($0, survivors(of: $0).isEmpty ? WorkObservation.stopped("gone (no process left)") : .running) })
    }

    /// Nothing is adopted: whatever survives is killed first, since the task is reported lost and
    /// the coordinator runs it again. What cannot be killed keeps its entry open.
    public func survival(of names: [String]) async throws -> [String: Survival] {
        var survival: [String: Survival] = [:]
        for name in names {
            guard let killed = await killSurvivors(of: name) else {
                survival[name] = .stuck("processes of an exec task orphaned by an agent restart survive SIGKILL; the task is not reported lost, so it does not run twice. Kill them by hand (grep \(Self.allocationVariable)=\(name) /proc/*/environ), then restart the agent")
                continue
            }
            if killed > 0 {
                logger.warning("killed an exec task orphaned by an agent restart; it is reported lost and runs again",
                               metadata: ["allocation.id": "\(name)", "processes": "\(killed)"])
            }
            survival[name] = .gone(killed > 0 ? "killed \(killed) orphaned processes" : "no process left")
        }
        return survival
    }
}
