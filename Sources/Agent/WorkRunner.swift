import Foundation
import Logging
import SpecolaProtocol
import SpecolaProcesses

/// Runs the claimed work the coordinator places on this node, whatever its kind: tasks (podman
/// containers, exec processes) and HA workloads (libvirt VMs, podman pods), each through its
/// `WorkDriver`, and reports what happens through the outbox, so no event is lost while no
/// leader answers.
///
/// The outbox's instruction ledger is the record of what may run here: an instruction is claimed
/// (with its payload) before anything starts, and its entry stays open until the work is known to
/// have ended; the outcome is stored before a task's container is removed. After an agent restart,
/// `resume` adopts what still runs and reports the rest, so nothing runs twice. Operations on one
/// name run one after another, so a stop never overtakes its start. A self-fence (`stopAll`
/// with `immediately`) kills every known process by pid first, then stops everything.
public actor WorkRunner: ClaimedWorkRunner {
    public nonisolated var families: [WorkFamily] { [.task, .workload] }

    /// Its outbox commits (fsync) and ledger writes block this thread, not the cooperative pool.
    private let executor = DedicatedThreadExecutor(name: "work-runner")
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    private struct Unit {
        let work: ClaimedWork
        /// Set once the runtime said it runs (or it was adopted).
        var up = false
        /// Its driver follows it to its end (a task); otherwise the watch learns when it ended (a workload).
        var followed = false
        /// Set once a stop (or the self-fence) was asked for; the reported outcome is then `stopped`.
        var stopReason: String?
        /// Its processes on this host, for a self-fence by pid.
        var processes: [ProcessIdentity] = []
    }

    let outbox: Outbox
    /// By kind: "podman" and "exec" for tasks, "vm" and "pod" for workloads.
    let drivers: [String: any WorkDriver]
    let logger: Logger
    let checkInterval: Duration
    /// Called after an event is queued, to wake the link's sender.
    let onEvent: @Sendable () -> Void
    /// By instruction id.
    private var units: [String: Unit] = [:]
    /// The latest queued operation per name; the next one waits for it.
    private var chains: [String: (number: Int, task: Task<Void, Never>)] = [:]
    private var operations = 0
    /// Leftovers without a ledger record, warned about once.
    private var unknownLeftovers: Set<String> = []

    /// Output lines a task prints to hand a declared result to later steps.
    public static let outputMarker = "specola-output: "
    static let outputValueLimit = 4_096

    /// A kind without a driver fails to start with the reason.
    public init(outbox: Outbox, drivers: [String: any WorkDriver], logger: Logger,
                checkInterval: Duration = .seconds(1), onEvent: @escaping @Sendable () -> Void) {
        self.outbox = outbox
        self.drivers = drivers
        self.logger = logger
        self.checkInterval = checkInterval
        self.onEvent = onEvent
    }

    /// Names and generations of the HA workloads that run here now.
    public var running: [String: UInt64] {
        Dictionary(units.values.filter { $0.work.family == .workload && $0.up }.map { ($0.work.name, $0.work.generation) }) { $1 }
    }

    /// The allocations of the tasks held here (starting or running).
    public var runningAllocations: [String] { units.values.filter { $0.work.family == .task }.map(\.work.id).sorted() }

    // MARK: - Instructions

    /// Starts work whose instruction was just claimed; returns at once.
    public func start(_ work: ClaimedWork) {
        guard units[work.id] == nil else { return }
        units[work.id] = Unit(work: work)
        logger.info("starting", metadata: work.logMetadata)
        enqueue(work.name) { await self.launch(work.id, adopting: false) }
    }

    /// Stops a task. One that is not held here is claimed as stopped, so a RunTask arriving later does not start it.
    public func stop(_ stop: Specola_V1_StopTask) -> String {
        let id = stop.allocationID
        guard units[id] != nil else {
            do {
                guard try outbox.claimInstruction(id) == nil else { return "already ended" }
                try outbox.recordInstruction(.with { $0.instructionID = id; $0.ok = false; $0.message = "stopped before it started" })
                report(.task(.with { $0.allocationID = id }), .stopped, "stopped before it started (\(stop.reason))")
            } catch {
                logger.error("cannot record a stop in the outbox", metadata: ["allocation.id": "\(id)", "error": "\(error)"])
            }
            return "stopped before it started"
        }
        halt(id, reason: stop.reason.isEmpty ? "stopped by the coordinator" : stop.reason)
        return "stopping"
    }

    /// Stops a workload instance. One that is not held here is claimed as ended, so a start arriving later does not run it.
    public func stop(_ stop: Specola_V1_StopWorkload) -> String {
        let work = ClaimedWork.workload(.with { $0.name = stop.name; $0.kind = stop.kind; $0.generation = stop.generation })
        guard units[work.id] != nil else {
            do {
                if try outbox.claimInstruction(work.id) == nil {
                    try outbox.recordInstruction(.with { $0.instructionID = work.id; $0.ok = false; $0.message = "stopped before it started" })
                }
            } catch {
                logger.error("cannot record a workload stop in the outbox", metadata: ["instruction.id": "\(work.id)", "error": "\(error)"])
            }
            report(work, .stopped, "not running on this node (\(stop.reason))")
            return "stopping"
        }
        halt(work.id, reason: stop.reason)
        return "stopping"
    }

    @discardableResult
    private func halt(_ id: String, reason: String, immediately: Bool = false) -> Task<Void, Never> {
        if units[id]?.stopReason == nil { units[id]?.stopReason = reason }
        logger.info("stopping", metadata: ["instruction.id": "\(id)", "reason": "\(reason)"])
        return enqueue(units[id]?.work.name ?? id) { await self.performStop(id, immediately: immediately) }
    }

    /// Stops everything held here; returns once all is stopped. The self-fence calls it with
    /// `immediately`: the coordinator starts the work elsewhere once the lease (plus a margin) has
    /// run out, so no grace period fits.
    public func stopAll(reason: String, immediately: Bool = false) async {
        let ids = units.keys.sorted()
        guard !ids.isEmpty else { return }
        if immediately {
            logger.critical("self-fencing: stopping every task on this node, and every HA workload", metadata: ["reason": "\(reason)", "instructions": "\(ids.count)"])
            // No runtime process to start first: what is known by pid dies now, the drivers clean up after.
            var killed = 0
            for id in ids {
                guard let unit = units[id] else { continue }
                units[id]?.stopReason = reason
                let group = drivers[unit.work.driverKind]?.processesLeadGroups ?? false
                killed += unit.processes.filter { $0.signal(SIGKILL, group: group) }.count
            }
            if killed > 0 {
                logger.critical("self-fence: killed workload processes by pid", metadata: ["processes": "\(killed)", "reason": "\(reason)"])
            }
        }
        let stops = ids.map { halt($0, reason: reason, immediately: immediately) }
        for stop in stops { await stop.value }
    }

    @discardableResult
    private func enqueue(_ name: String, _ operation: @escaping @Sendable () async -> Void) -> Task<Void, Never> {
        let previous = chains[name]?.task
        operations += 1
        let number = operations
        let task = Task {
            await previous?.value
            await operation()
            self.chainDone(name, number)
        }
        chains[name] = (number, task)
        return task
    }

    /// Forgets a name's chain once its last operation is done (every task has a name of its own).
    private func chainDone(_ name: String, _ number: Int) {
        if chains[name]?.number == number { chains.removeValue(forKey: name) }
    }

    // MARK: - Starting and stopping

    private func launch(_ id: String, adopting: Bool) async {
        guard let work = units[id]?.work else { return }
        guard let driver = drivers[work.driverKind] else {
            end(id, work: work, .failedToStart, work.noDriverMessage)
            return
        }
        for (other, unit) in units where other != id && unit.work.family == work.family && unit.work.name == work.name {
            // The coordinator moved on to a newer instance; the older one is finished for the ledger.
            finish(other, ok: false, message: "replaced by generation \(work.generation)")
            units.removeValue(forKey: other)
        }
        let started: DriverStart
        do {
            started = try await driver.start(work.driverWork, adopting: adopting)
        } catch {
            logger.warning("failed to start", metadata: work.logMetadata.merging(["error": "\(error)"]) { $1 })
            try? await driver.stop(work.name, immediately: true, processes: [])
            end(id, work: work, .failedToStart, "\(error)")
            return
        }
        switch started {
        case .ended(let outcome):
            await ended(id, work: work, driver: driver, outcome: outcome)
        case .following(let ending, let processes):
            units[id]?.up = true
            units[id]?.followed = true
            units[id]?.processes = processes
            report(work, .started, "")
            if processes.isEmpty { Task { await self.learnProcesses(id, driver: driver, retrying: true) } }
            Task { await self.ended(id, work: work, driver: driver, outcome: await ending.value) }
        case .watched:
            units[id]?.up = true
            report(work, .started, adopting ? "still running after an agent restart" : "running on this node")
            await learnProcesses(id, driver: driver, retrying: false)
        }
    }

    /// Remembers the work's processes, for a self-fence that cannot wait for the runtime. A
    /// container's init appears just after its start was asked for, so that is tried for a while.
    private func learnProcesses(_ id: String, driver: any WorkDriver, retrying: Bool) async {
        guard let name = units[id]?.work.name else { return }
        for _ in 0..<(retrying ? 50 : 1) {
            guard units[id] != nil else { return }
            let processes = await driver.processes(of: name)
            if !processes.isEmpty {
                units[id]?.processes = processes
                return
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    private func performStop(_ id: String, immediately: Bool) async {
        guard let unit = units[id], let driver = drivers[unit.work.driverKind] else { return }
        // A stop must happen: retry while the runtime does not answer, within bounds.
        var attempt = 0
        while true {
            do {
                try await driver.stop(unit.work.name, immediately: immediately, processes: units[id]?.processes ?? unit.processes)
                break
            } catch {
                attempt += 1
                logger.warning("stop failed; retrying", metadata: ["instruction.id": "\(id)", "error": "\(error)", "attempt": "\(attempt)"])
                if attempt >= 30 {
                    units[id]?.stopReason = nil
                    logger.error("could not be stopped; it is still watched", metadata: ["instruction.id": "\(id)"])
                    return
                }
                try? await Task.sleep(for: .seconds(2))
            }
        }
        // Followed work reports its end once its driver sees it end.
        guard let unit = units[id], !unit.followed else { return }
        logger.info("stopped", metadata: ["instruction.id": "\(id)", "reason": "\(unit.stopReason ?? "")"])
        end(id, work: unit.work, .stopped, "stopped: \(unit.stopReason ?? "")")
    }

    /// Followed work ended: report how, store the outcome, then remove what the runtime kept of it.
    private func ended(_ id: String, work: ClaimedWork, driver: any WorkDriver, outcome: TaskOutcome) async {
        let kind: WorkEventKind
        var message = outcome.message
        switch (units[id]?.stopReason, outcome.ending) {
        case (let reason?, _):
            kind = .stopped
            message = "stopped: \(reason)"
        case (nil, .exited): kind = .exited
        case (nil, .timedOut): kind = .timedOut
        case (nil, .failedToStart): kind = .failedToStart
        }
        report(work, kind, message, outcome: outcome)
        finish(id, ok: work.succeeded(kind, exitCode: outcome.exitCode), message: message)
        _ = await driver.removeLeftovers(of: work.name)
        units.removeValue(forKey: id)
        logger.info("ended", metadata: work.logMetadata.merging([
            "outcome": "\(kind)", "exit.code": "\(outcome.exitCode)",
        ]) { $1 })
    }

    // MARK: - Watching

    /// Runs the watch loop until cancelled.
    public func run() async {
        while !Task.isCancelled {
            await check()
            try? await Task.sleep(for: checkInterval)
        }
    }

    /// Asks each runtime about the watched work that is up here; work that stopped by itself is
    /// cleaned up and reported `exited`.
    public func check() async {
        for (kind, driver) in drivers {
            let watched = units.filter { $0.value.work.driverKind == kind && $0.value.up && !$0.value.followed && $0.value.stopReason == nil }
            guard !watched.isEmpty else { continue }
            let seen: [String: WorkObservation]
            do {
                seen = try await driver.observe(watched.values.map(\.work.name))
            } catch {
                logger.debug("cannot ask the runtime about the work it runs", metadata: ["driver": "\(kind)", "error": "\(error)"])
                continue
            }
            for (id, unit) in watched {
                guard case .stopped(let state)? = seen[unit.work.name], let now = units[id], now.up, now.stopReason == nil else { continue }
                units[id]?.up = false
                enqueue(unit.work.name) { await self.endedByItself(id, state: state) }
            }
        }
    }

    private func endedByItself(_ id: String, state: String) async {
        guard let work = units[id]?.work else { return }
        logger.warning("stopped by itself", metadata: work.logMetadata.merging(["state": "\(state)"]) { $1 })
        // Leave nothing behind (a crashed domain, an exited pod) before saying it ended, so a restart here starts clean.
        try? await drivers[work.driverKind]?.stop(work.name, immediately: true, processes: [])
        end(id, work: work, .exited, "\(work.driverKind) \(state)")
    }

    // MARK: - Restart of the agent

    /// After an agent restart: adopt what still runs, report the rest, close their entries.
    /// Returns once the adopted work is followed or watched again.
    public func resume(_ entries: [LedgerEntry]) async {
        var byDriver: [String: [ClaimedWork]] = [:]
        for entry in entries {
            guard let work = ClaimedWork(entry) else {
                closeUnreadable(entry)
                continue
            }
            guard drivers[work.driverKind] != nil else {
                let lost = work.lostAfterRestart(runtimeMissing: true)
                report(work, .lost, lost.event)
                finish(work.id, ok: false, message: lost.ledger)
                continue
            }
            byDriver[work.driverKind, default: []].append(work)
        }
        var adoptions: [Task<Void, Never>] = []
        for (kind, works) in byDriver.sorted(by: { $0.key < $1.key }) {
            guard let driver = drivers[kind] else { continue }
            let survival: [String: Survival]
            do {
                survival = try await driver.survival(of: works.map(\.name))
            } catch {
                // Cannot tell: keep it as ours and let the watch decide once the runtime answers.
                logger.warning("cannot tell whether work survived the agent restart", metadata: ["driver": "\(kind)", "error": "\(error)"])
                survival = Dictionary(works.map { ($0.name, Survival.adoptable) }) { $1 }
            }
            for work in works {
                switch survival[work.name] ?? .gone("not found") {
                case .adoptable:
                    logger.info("re-attaching to a \(work.family == .task ? "task" : "workload") that outlived the agent", metadata: work.logMetadata)
                    units[work.id] = Unit(work: work)
                    adoptions.append(enqueue(work.name) { await self.launch(work.id, adopting: true) })
                case .gone:
                    let lost = work.lostAfterRestart(runtimeMissing: false)
                    report(work, .lost, lost.event)
                    finish(work.id, ok: false, message: lost.ledger)
                case .stuck(let problem):
                    // Not reported lost: the coordinator would run it again while it still runs here.
                    logger.critical("\(problem)", metadata: work.logMetadata)
                }
            }
        }
        for adoption in adoptions { await adoption.value }
        await sweepEndedContainers()
    }

    /// An entry whose work cannot be read back is closed; a task is reported lost so the coordinator decides.
    private func closeUnreadable(_ entry: LedgerEntry) {
        logger.error("work claimed before the agent restarted cannot be read back from the ledger; its entry is closed",
                     metadata: ["instruction.id": "\(entry.id)"])
        if (entry.family ?? WorkFamily(instructionID: entry.id)) == .task {
            report(.task(.with { $0.allocationID = entry.id }), .lost, "unreadable in the agent's ledger after a restart")
        }
        finish(entry.id, ok: false, message: "unreadable after an agent restart")
    }

    // MARK: - Sweeping ended containers

    /// Removes what runtimes keep of this node's ended work (a task container whose removal failed
    /// when the task ended, e.g. on a hogged podman): only what the ledger says has ended and no
    /// longer runs here. Work this agent has no record of is left alone. Returns the removed names.
    @discardableResult
    public func sweepEndedContainers() async -> [String] {
        var removed: [String] = []
        for (kind, driver) in drivers.sorted(by: { $0.key < $1.key }) {
            let names: [String]
            do {
                names = try await driver.leftovers()
            } catch {
                logger.debug("cannot list what the runtime keeps; the sweep tries again later", metadata: ["driver": "\(kind)", "error": "\(error)"])
                continue
            }
            let held = Set(units.values.map(\.work.name))
            for name in names.sorted() where !held.contains(name) {
                // Only what this agent's ledger says has ended: what it has no record of is not its to remove.
                guard (try? outbox.instructionFinished(name)) == true else {
                    if unknownLeftovers.insert(name).inserted {
                        logger.warning("a Specola container this agent has no record of is left alone; remove it by hand if it is stale",
                                       metadata: ["allocation.id": "\(name)", "container": "\(PodmanDriver.containerName(name))"])
                    }
                    continue
                }
                logger.info("removing the container of an ended task", metadata: ["allocation.id": "\(name)"])
                if await driver.removeLeftovers(of: name) { removed.append(name) }
            }
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

    // MARK: - Ledger and reports

    /// The work is over: report it, close its ledger entry and forget it.
    private func end(_ id: String, work: ClaimedWork, _ kind: WorkEventKind, _ message: String) {
        report(work, kind, message)
        finish(id, ok: work.succeeded(kind, exitCode: 0), message: message)
        units.removeValue(forKey: id)
    }

    private func finish(_ id: String, ok: Bool, message: String) {
        do {
            try outbox.recordInstruction(.with { $0.instructionID = id; $0.ok = ok; $0.message = message })
        } catch {
            logger.error("cannot record the end of work in the outbox", metadata: ["instruction.id": "\(id)", "error": "\(error)"])
        }
    }

    private func report(_ work: ClaimedWork, _ kind: WorkEventKind, _ message: String, outcome: TaskOutcome? = nil) {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        do {
            switch work.event(kind, message: message, outcome: outcome, atUnixMs: now) {
            case .task(let event): _ = try outbox.append(taskEvents: [event], atUnixMs: now)
            case .workload(let event): _ = try outbox.append(workloadEvents: [event], atUnixMs: now)
            }
            onEvent()
        } catch {
            logger.error("cannot queue an event; the coordinator will not hear of it until the outbox works",
                         metadata: ["instruction.id": "\(work.id)", "error": "\(error)"])
        }
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
