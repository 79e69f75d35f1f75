import Foundation
import Logging
import SpecolaProtocol
import SpecolaProcesses

/// Runs the allocations the coordinator places on this node and reports what
/// happens to them through the outbox, so no event is lost while no leader
/// answers. The outbox's instruction ledger is the record of what ran: an
/// allocation is claimed before it starts, and its outcome is stored before
/// its container is removed. After a restart, `resume` re-attaches to
/// containers that are still there and reports the rest as lost, so nothing
/// runs twice.
public actor TaskRunner: ClaimedWorkRunner {
    public nonisolated var family: WorkFamily { .task }

    /// Its outbox commits (fsync) and ledger writes block this thread, not the cooperative pool.
    private let executor = DedicatedThreadExecutor(name: "task-runner")
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    private struct Running {
        var driver: String
        var stopReason: String?
        /// The exec process (leader of its group) or the container's init, once known.
        var process: ProcessIdentity?
    }

    let outbox: Outbox
    let podman: PodmanDriver
    let exec: ExecDriver
    let logger: Logger
    /// Called after an event is queued, to wake the link's sender.
    let onEvent: @Sendable () -> Void
    private var running: [String: Running] = [:]
    /// Containers without a ledger record, warned about once.
    private var unknownContainers: Set<String> = []

    /// Output lines a task prints to hand a declared result to later steps.
    public static let outputMarker = "specola-output: "
    static let outputValueLimit = 4_096

    public init(outbox: Outbox, podman: PodmanDriver, exec: ExecDriver, logger: Logger, onEvent: @escaping @Sendable () -> Void) {
        self.outbox = outbox
        self.podman = podman
        self.exec = exec
        self.logger = logger
        self.onEvent = onEvent
    }

    public var runningAllocations: [String] { running.keys.sorted() }

    /// Starts an allocation whose instruction was just claimed; returns at once.
    public func start(_ run: Specola_V1_RunTask) {
        guard running[run.allocationID] == nil else { return }
        running[run.allocationID] = Running(driver: run.driver)
        logger.info("task starting", metadata: [
            "allocation.id": "\(run.allocationID)", "task.id": "\(run.taskID)", "driver": "\(run.driver)",
        ])
        Task { await self.execute(run) }
    }

    /// Stops an allocation. One that is not running here is claimed as
    /// stopped, so a RunTask arriving later does not start it.
    public func stop(_ stop: Specola_V1_StopTask) async -> String {
        let id = stop.allocationID
        if var task = running[id] {
            task.stopReason = stop.reason.isEmpty ? "stopped by the coordinator" : stop.reason
            running[id] = task
            logger.info("stopping task", metadata: ["allocation.id": "\(id)", "reason": "\(task.stopReason!)"])
            if task.driver == "exec" {
                task.process?.signal(SIGTERM, group: true)
            } else {
                Task { [podman] in await podman.stop(allocationID: id) }
            }
            return "stopping"
        }
        do {
            guard try outbox.claimInstruction(id) == nil else { return "already ended" }
            try outbox.recordInstruction(.with { $0.instructionID = id; $0.ok = false; $0.message = "stopped before it started" })
            report(.with {
                $0.allocationID = id
                $0.kind = .stopped
                $0.message = "stopped before it started (\(stop.reason))"
            })
        } catch {
            logger.error("cannot record a stop in the outbox", metadata: ["allocation.id": "\(id)", "error": "\(error)"])
        }
        return "stopped before it started"
    }

    /// The self-fence: no leader has answered for the lease, so the coordinator may
    /// already be placing this node's work elsewhere. Everything running is killed now.
    public func selfFence(reason: String) async {
        let ids = running.keys.sorted()
        guard !ids.isEmpty else { return }
        logger.critical("self-fencing: stopping every task on this node", metadata: ["reason": "\(reason)", "allocations": "\(ids.count)"])
        // The lease margin is all the time there is: SIGKILL by pid first (no process to start on a
        // loaded machine), then podman for containers whose pid is not known yet.
        var viaPodman: [String] = []
        for id in ids {
            running[id]?.stopReason = "self-fence: \(reason)"
            // An exec task leads its own process group.
            running[id]?.process?.signal(SIGKILL, group: running[id]?.driver == "exec")
            if running[id]?.driver != "exec" { viaPodman.append(id) }
        }
        for id in viaPodman { await podman.stop(allocationID: id, grace: 0) }
    }

    /// After a restart: re-attach to allocations whose containers still exist,
    /// report those that vanished as lost, and remove containers of allocations that already ended.
    public func resume(_ entries: [LedgerEntry]) async {
        let containers = (try? await podman.managedAllocations()) ?? [:]
        for entry in entries {
            guard let payload = entry.payload, let run = try? Specola_V1_RunTask(serializedBytes: payload) else {
                closeUnreadable(entry.id)
                continue
            }
            let id = entry.id
            if run.driver == "podman", let state = containers[id] {
                logger.info("re-attaching to a task that outlived the agent", metadata: ["allocation.id": "\(id)", "container.state": "\(state)"])
                running[id] = Running(driver: run.driver)
                Task { await self.execute(run) }
            } else {
                // It never started, or its container is gone, or it was an exec process: those cannot
                // be re-attached (their output pipes died with the agent), so survivors are killed
                // first. Reporting it lost lets the coordinator run it again, so nothing may be left.
                if run.driver == "exec" {
                    guard let killed = await exec.killSurvivors(of: id) else {
                        logger.critical("processes of an exec task orphaned by an agent restart survive SIGKILL; the task is not reported lost, so it does not run twice. Kill them by hand (grep \(ExecDriver.allocationVariable)=\(id) /proc/*/environ), then restart the agent", metadata: ["allocation.id": "\(id)"])
                        continue
                    }
                    if killed > 0 {
                        logger.warning("killed an exec task orphaned by an agent restart; it is reported lost and runs again",
                                       metadata: ["allocation.id": "\(id)", "processes": "\(killed)"])
                    }
                }
                report(.with {
                    $0.allocationID = id
                    $0.kind = .lost
                    $0.message = "the agent restarted before the task finished and cannot re-attach to it"
                })
                try? outbox.recordInstruction(.with { $0.instructionID = id; $0.ok = false; $0.message = "lost in an agent restart" })
            }
        }
        await sweepEndedContainers(listed: containers)
    }

    /// An entry whose task cannot be read back is closed, and reported lost so the coordinator decides.
    private func closeUnreadable(_ id: String) {
        logger.error("a task claimed before the agent restarted cannot be read back from the ledger; it is reported lost",
                     metadata: ["allocation.id": "\(id)"])
        report(.with { $0.allocationID = id; $0.kind = .lost; $0.message = "unreadable in the agent's ledger after a restart" })
        try? outbox.recordInstruction(.with { $0.instructionID = id; $0.ok = false; $0.message = "unreadable after an agent restart" })
    }

    // MARK: - Sweeping ended containers

    /// Removes the containers of this node's allocations that have ended (the ledger says so) and
    /// no longer run here: a removal that failed when the task ended (a hogged podman) is retried.
    /// A Specola container this agent has no record of is left alone. Returns the removed allocations.
    @discardableResult
    public func sweepEndedContainers() async -> [String] {
        let containers: [String: String]
        do {
            containers = try await podman.managedAllocations()
        } catch {
            logger.debug("cannot list this node's task containers; the sweep tries again later", metadata: ["error": "\(error)"])
            return []
        }
        return await sweepEndedContainers(listed: containers)
    }

    @discardableResult
    private func sweepEndedContainers(listed containers: [String: String]) async -> [String] {
        var removed: [String] = []
        for id in containers.keys.sorted() where running[id] == nil {
            // Only what this agent's ledger says has ended: a container it has no record of is not its to remove.
            guard (try? outbox.instructionFinished(id)) == true else {
                if unknownContainers.insert(id).inserted {
                    logger.warning("a Specola container this agent has no record of is left alone; remove it by hand if it is stale",
                                   metadata: ["allocation.id": "\(id)", "container": "\(PodmanDriver.containerName(id))"])
                }
                continue
            }
            logger.info("removing the container of an ended task", metadata: ["allocation.id": "\(id)"])
            if await podman.remove(allocationID: id) { removed.append(id) }
        }
        return removed
    }

    /// Sweeps every `interval` until cancelled.
    public func sweepPeriodically(every interval: Duration) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            if Task.isCancelled { return }
            await sweepEndedContainers()
        }
    }

    private func execute(_ run: Specola_V1_RunTask) async {
        let spec = Self.driverSpec(run)
        let id = run.allocationID
        // Reported once the work really runs, so "running" means a process or container exists.
        let started: @Sendable () -> Void = { Task { await self.report(.with { $0.allocationID = id; $0.kind = .started }) } }
        let outcome: TaskOutcome
        do {
            if run.driver == "exec" {
                outcome = try await exec.run(spec) { pid in
                    started()
                    // Taken at once, before the process can end and its pid be reused.
                    let process = ProcessIdentity(pid: pid)
                    Task { await self.noteProcess(id, process) }
                }
            } else {
                outcome = try await podman.run(spec, keepContainer: true) {
                    started()
                    Task { await self.learnContainerPID(id) }
                }
            }
        } catch {
            outcome = TaskOutcome(ending: .failedToStart, exitCode: -1, stdout: "", stderr: "", message: "\(error)")
        }
        let stopReason = running[run.allocationID]?.stopReason
        var event = Specola_V1_TaskEvent.with {
            $0.allocationID = run.allocationID
            $0.exitCode = outcome.exitCode
            $0.message = outcome.message
            $0.stdoutTail = outcome.stdout
            $0.stderrTail = outcome.stderr
        }
        switch (stopReason, outcome.ending) {
        case (let reason?, _):
            event.kind = .stopped
            event.message = "stopped: \(reason)"
        case (nil, .exited):
            event.kind = .exited
            event.outputs = Self.outputs(in: outcome.stdout, declared: run.outputs)
        case (nil, .timedOut): event.kind = .timedOut
        case (nil, .failedToStart): event.kind = .failedToStart
        }
        report(event)
        do {
            try outbox.recordInstruction(.with {
                $0.instructionID = run.allocationID
                $0.ok = event.kind == .exited && outcome.exitCode == 0
                $0.message = event.message
            })
        } catch {
            logger.error("cannot record a task's end in the outbox", metadata: ["allocation.id": "\(run.allocationID)", "error": "\(error)"])
        }
        if run.driver == "podman" { await podman.remove(allocationID: run.allocationID) }
        running.removeValue(forKey: run.allocationID)
        logger.info("task ended", metadata: [
            "allocation.id": "\(run.allocationID)", "task.id": "\(run.taskID)", "outcome": "\(event.kind)",
            "exit.code": "\(outcome.exitCode)",
        ])
    }

    /// Remembers the container's init pid once it runs, so a self-fence can kill it without podman.
    private func learnContainerPID(_ id: String) async {
        for _ in 0..<50 {
            guard running[id] != nil else { return }
            if let pid = await podman.containerPID(allocationID: id) {
                running[id]?.process = ProcessIdentity(pid: pid)
                return
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    private func noteProcess(_ id: String, _ process: ProcessIdentity?) {
        guard var task = running[id] else { return }
        task.process = process
        running[id] = task
        // A stop that arrived before the process existed.
        if task.stopReason != nil { process?.signal(SIGTERM, group: true) }
    }

    private func report(_ event: Specola_V1_TaskEvent) {
        var event = event
        event.atUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
        do {
            _ = try outbox.append(taskEvents: [event], atUnixMs: event.atUnixMs)
            onEvent()
        } catch {
            logger.error("cannot queue a task event; the coordinator will not hear of it until the outbox works",
                         metadata: ["allocation.id": "\(event.allocationID)", "error": "\(error)"])
        }
    }

    static func driverSpec(_ run: Specola_V1_RunTask) -> TaskLaunch {
        var spec = TaskLaunch(allocationID: run.allocationID, image: run.image, command: run.command)
        spec.environment = run.env
        spec.mounts = run.mounts.map { TaskLaunch.Mount(source: $0.source, target: $0.target, readOnly: $0.readOnly) }
        if run.cpuMillicores > 0 { spec.cpus = Double(run.cpuMillicores) / 1000 }
        if run.memoryBytes > 0 { spec.memoryBytes = UInt64(run.memoryBytes) }
        if run.timeoutSeconds > 0 { spec.timeout = .seconds(run.timeoutSeconds) }
        return spec
    }

    /// Declared outputs printed as `specola-output: KEY=VALUE`; the last value of a key wins.
    static func outputs(in stdout: String, declared: [String]) -> [String: String] {
        guard !declared.isEmpty else { return [:] }
        let wanted = Set(declared)
        var found: [String: String] = [:]
        for line in stdout.split(separator: "\n") where line.hasPrefix(outputMarker) {
            let pair = line.dropFirst(outputMarker.count)
            guard let equals = pair.firstIndex(of: "=") else { continue }
            let key = String(pair[..<equals])
            let value = String(pair[pair.index(after: equals)...])
            if wanted.contains(key), value.utf8.count <= outputValueLimit { found[key] = value }
        }
        return found
    }
}
