import Foundation
import SpecolaProtocol

/// What a runtime says about one unit of work on this node.
public enum WorkObservation: Equatable, Sendable {
    case running
    /// Not running; the text says what the runtime shows (e.g. "shutoff", "exited", "gone").
    case stopped(String)
}

/// One unit of claimed work as a driver sees it. The runtime knows it by `name` (a task's
/// allocation id, a workload's name), so a start of a name that already runs adopts it
/// instead of starting a second one.
public enum DriverWork: Sendable {
    /// A task (podman container, exec process) that runs to its end.
    case task(TaskLaunch)
    /// An HA workload (libvirt VM, podman pod) that runs until stopped.
    case workload(name: String, generation: UInt64, definition: String)

    public var name: String {
        switch self {
        case .task(let launch): launch.allocationID
        case .workload(let name, _, _): name
        }
    }
}

/// How a start went.
public enum DriverStart: Sendable {
    /// It runs and the driver follows it to its end: `ended` yields the outcome.
    case following(ended: Task<TaskOutcome, Never>, processes: [ProcessIdentity])
    /// It runs until stopped; the runner's watch learns through `observe` when it ends by itself.
    case watched
    /// It ended before it ran (refused, failed to start) or while it started.
    case ended(TaskOutcome)
}

/// After an agent restart: what the runtime still holds of work a previous agent process started.
public enum Survival: Sendable, Equatable {
    /// Still there: `start(adopting: true)` follows or watches it again.
    case adoptable
    /// Gone, or killed because it cannot be followed again; the text says which.
    case gone(String)
    /// Something of it survives and cannot be killed; it must stay claimed so it does not run twice.
    case stuck(String)
}

/// The one driver protocol of the agent's `WorkRunner`: start work under an instruction's name
/// (or adopt it after a restart), stop it, observe and list what runs, and name its processes
/// so a self-fence can kill them without asking the runtime.
public protocol WorkDriver: Sendable {
    /// Starts `work` and returns once it runs (or has ended). With `adopting` (after an agent
    /// restart) nothing new starts: the driver only follows or watches what still runs.
    func start(_ work: DriverWork, adopting: Bool) async throws -> DriverStart
    /// Stops it (and removes it, for work that is not followed to its end); succeeds when there is
    /// none. `immediately` (the self-fence) kills without a grace period; `processes` are those
    /// known for it. Work that is followed ends through its `ended` task afterwards.
    func stop(_ name: String, immediately: Bool, processes: [ProcessIdentity]) async throws
    /// The state of each named unit. Throws when the runtime cannot be asked, which is never
    /// taken to mean "stopped".
    func observe(_ names: [String]) async throws -> [String: WorkObservation]
    /// After an agent restart: whether each named unit can be adopted.
    func survival(of names: [String]) async throws -> [String: Survival]
    /// The processes that run it on this host, for a self-fence that cannot wait for the runtime;
    /// empty when the runtime's own stop needs no process to start.
    func processes(of name: String) async -> [ProcessIdentity]
    /// Whether those processes lead process groups of their own (a self-fence kills the group).
    var processesLeadGroups: Bool { get }
    /// Names of this node's units the runtime still holds after they ended (task containers kept
    /// until their outcome is stored), for the sweep.
    func leftovers() async throws -> [String]
    /// Removes what is left of an ended unit; false when the runtime could not.
    func removeLeftovers(of name: String) async -> Bool
}

extension WorkDriver {
    public func processes(of name: String) async -> [ProcessIdentity] { [] }
    public var processesLeadGroups: Bool { false }
    public func leftovers() async throws -> [String] { [] }
    public func removeLeftovers(of name: String) async -> Bool { true }

    /// Adoptable while the runtime shows it running.
    public func survival(of names: [String]) async throws -> [String: Survival] {
        try await observe(names).mapValues { seen in
            if case .stopped(let state) = seen { .gone(state) } else { .adoptable }
        }
    }

    /// For drivers that follow work to its end: runs `body` in a task of its own and returns once
    /// `body` says the work runs (with its processes) or once it has ended. A thrown error ends it
    /// as failed to start.
    static func following(
        _ body: @escaping @Sendable (_ running: @escaping @Sendable ([ProcessIdentity]) -> Void) async throws -> TaskOutcome
    ) async -> DriverStart {
        let (runs, signal) = AsyncStream<[ProcessIdentity]>.makeStream(bufferingPolicy: .bufferingOldest(1))
        let ended = Task<TaskOutcome, Never> {
            defer { signal.finish() }
            do {
                return try await body { signal.yield($0) }
            } catch {
                return TaskOutcome(ending: .failedToStart, exitCode: -1, stdout: "", stderr: "", message: "\(error)")
            }
        }
        var iterator = runs.makeAsyncIterator()
        if let processes = await iterator.next() { return .following(ended: ended, processes: processes) }
        return .ended(await ended.value)
    }
}

/// What an HA workload driver does on top of starting a definition: it runs until stopped, and
/// the runner's watch learns when it ends.
public protocol WatchedWorkloadDriver: WorkDriver {
    func start(name: String, generation: UInt64, definition: String) async throws
    func stop(name: String, immediately: Bool) async throws
}

extension WatchedWorkloadDriver {
    public func start(_ work: DriverWork, adopting: Bool) async throws -> DriverStart {
        guard case .workload(let name, let generation, let definition) = work else {
            throw DriverError("a task cannot run as an HA workload")
        }
        // Adopted after a restart: it was seen running, and nothing new may start.
        if !adopting { try await start(name: name, generation: generation, definition: definition) }
        return .watched
    }

    public func stop(_ name: String, immediately: Bool, processes: [ProcessIdentity]) async throws {
        try await stop(name: name, immediately: immediately)
    }
}
