import Foundation
import Logging
import SpecolaProtocol
import SpecolaProcesses

/// Runs the HA workloads (VMs, pods) the coordinator starts on this node,
/// watches them, and reports what happens through the outbox.
///
/// The outbox's instruction ledger is the record of what may run here: the
/// start instruction of an instance is claimed (with its payload) before
/// anything starts and stays unfinished until the instance is known to have
/// ended. After an agent restart, `resume` looks at every unfinished one: still
/// running means adopted, gone means reported `exited`. Operations on one
/// workload run one after another, so a stop never overtakes its start.
public actor WorkloadRunner: ClaimedWorkRunner {
    public nonisolated var family: WorkFamily { .workload }

    /// Its outbox commits (fsync) and ledger writes block this thread, not the cooperative pool.
    private let executor = DedicatedThreadExecutor(name: "workloads")
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    private struct Instance {
        var start: Specola_V1_StartWorkload
        /// Set once the runtime said it started (or it was adopted); only then is it watched.
        var up = false
        var stopping = false
        /// Its processes on this host, learned once it runs, for a self-fence by pid.
        var processes: [ProcessIdentity] = []
        var id: String { Self.instanceID(start.name, start.generation) }
        static func instanceID(_ name: String, _ generation: UInt64) -> String { InstructionID.workloadInstance(name, generation) }
    }

    let outbox: Outbox
    let drivers: [String: any WorkloadDriver]
    let logger: Logger
    let checkInterval: Duration
    /// Called after an event is queued, to wake the link's sender.
    let onEvent: @Sendable () -> Void
    private var instances: [String: Instance] = [:]
    /// The latest queued operation per workload name; the next one waits for it.
    private var chains: [String: Task<Void, Never>] = [:]

    /// `drivers` by kind ("vm", "pod"); a kind without a driver fails to start with the reason.
    public init(outbox: Outbox, drivers: [String: any WorkloadDriver], logger: Logger,
                checkInterval: Duration = .seconds(1), onEvent: @escaping @Sendable () -> Void) {
        self.outbox = outbox
        self.drivers = drivers
        self.logger = logger
        self.checkInterval = checkInterval
        self.onEvent = onEvent
    }

    /// Names and generations of what runs here now.
    public var running: [String: UInt64] { instances.filter { $0.value.up }.mapValues(\.start.generation) }

    // MARK: - Instructions

    /// Starts an instance whose instruction was just claimed; returns at once.
    public func start(_ start: Specola_V1_StartWorkload) -> String {
        enqueue(start.name) { await self.perform(start) }
        return "starting"
    }

    /// Stops an instance. One that never started here is claimed as ended, so a
    /// start arriving later does not run it.
    public func stop(_ stop: Specola_V1_StopWorkload) -> String {
        enqueue(stop.name) { await self.perform(stop) }
        return "stopping"
    }

    /// Stops every workload this agent runs; returns once all are stopped. The
    /// self-fence calls it with `immediately`: the coordinator starts them
    /// elsewhere once the lease (plus a margin) has run out, so no grace period fits.
    public func stopAll(reason: String, immediately: Bool = false) async {
        if immediately {
            // No runtime process to start first: what is known by pid dies now, the runtime cleans up after.
            let known = instances.values.flatMap(\.processes)
            let killed = known.filter { $0.signal(SIGKILL) }.count
            if killed > 0 {
                logger.critical("self-fence: killed workload processes by pid", metadata: ["processes": "\(killed)", "reason": "\(reason)"])
            }
        }
        let all = instances.values.map(\.start)
        var tasks: [Task<Void, Never>] = []
        for start in all {
            let stop = Specola_V1_StopWorkload.with {
                $0.name = start.name
                $0.kind = start.kind
                $0.generation = start.generation
                $0.reason = reason
            }
            tasks.append(enqueue(start.name) { await self.perform(stop, immediately: immediately) })
        }
        for task in tasks { await task.value }
    }

    @discardableResult
    private func enqueue(_ name: String, _ operation: @escaping @Sendable () async -> Void) -> Task<Void, Never> {
        let previous = chains[name]
        let task = Task {
            await previous?.value
            await operation()
        }
        chains[name] = task
        return task
    }

    private func perform(_ start: Specola_V1_StartWorkload) async {
        let id = Instance.instanceID(start.name, start.generation)
        guard let driver = drivers[start.kind] else {
            end(id, start: start, kind: .failedToStart, message: "this agent runs no \(start.kind) workloads (no \(start.kind == "vm" ? "libvirt.uri" : "podman") configured)")
            return
        }
        if let older = instances[start.name], older.start.generation != start.generation {
            // The coordinator moved on to a newer instance; the older one is finished for the ledger.
            finish(older.id, ok: false, message: "replaced by generation \(start.generation)")
        }
        instances[start.name] = Instance(start: start)
        logger.info("starting workload", metadata: [
            "workload.name": "\(start.name)", "workload.kind": "\(start.kind)", "workload.generation": "\(start.generation)",
        ])
        do {
            try await driver.start(name: start.name, generation: start.generation, definition: start.definition)
        } catch {
            logger.warning("workload failed to start", metadata: ["workload.name": "\(start.name)", "error": "\(error)"])
            try? await driver.stop(name: start.name, immediately: true)
            end(id, start: start, kind: .failedToStart, message: "\(error)")
            return
        }
        instances[start.name]?.up = true
        report(start, .started, "running on this node")
        await learnProcesses(start, driver: driver)
    }

    /// Remembers the instance's processes, for a self-fence that cannot wait for the runtime.
    private func learnProcesses(_ start: Specola_V1_StartWorkload, driver: any WorkloadDriver) async {
        let processes = await driver.processes(of: start.name)
        guard instances[start.name]?.start.generation == start.generation else { return }
        instances[start.name]?.processes = processes
    }

    private func perform(_ stop: Specola_V1_StopWorkload, immediately: Bool = false) async {
        let id = Instance.instanceID(stop.name, stop.generation)
        let start = Specola_V1_StartWorkload.with { $0.name = stop.name; $0.kind = stop.kind; $0.generation = stop.generation }
        guard let instance = instances[stop.name], instance.start.generation == stop.generation else {
            do {
                if try outbox.claimInstruction(id) == nil {
                    try outbox.recordInstruction(.with { $0.instructionID = id; $0.ok = false; $0.message = "stopped before it started" })
                }
            } catch {
                logger.error("cannot record a workload stop in the outbox", metadata: ["instruction.id": "\(id)", "error": "\(error)"])
            }
            report(start, .stopped, "not running on this node (\(stop.reason))")
            return
        }
        instances[stop.name]?.stopping = true
        guard let driver = drivers[stop.kind] else { return }
        // A stop must happen: retry while the runtime does not answer, within bounds.
        var attempt = 0
        while true {
            do {
                try await driver.stop(name: stop.name, immediately: immediately)
                break
            } catch {
                attempt += 1
                logger.warning("workload stop failed; retrying", metadata: ["workload.name": "\(stop.name)", "error": "\(error)", "attempt": "\(attempt)"])
                if attempt >= 30 {
                    instances[stop.name]?.stopping = false
                    logger.error("workload could not be stopped; it is still watched", metadata: ["workload.name": "\(stop.name)"])
                    return
                }
                try? await Task.sleep(for: .seconds(2))
            }
        }
        logger.info("workload stopped", metadata: ["workload.name": "\(stop.name)", "reason": "\(stop.reason)"])
        end(instance.id, start: instance.start, kind: .stopped, message: "stopped: \(stop.reason)")
    }

    // MARK: - Watching

    /// Runs the watch loop until cancelled.
    public func run() async {
        while !Task.isCancelled {
            await check()
            try? await Task.sleep(for: checkInterval)
        }
    }

    /// Asks each runtime about the workloads that are up here; one that stopped
    /// by itself is cleaned up and reported `exited`.
    public func check() async {
        for (kind, driver) in drivers {
            let names = instances.values.filter { $0.start.kind == kind && $0.up && !$0.stopping }.map(\.start.name)
            guard !names.isEmpty else { continue }
            let seen: [String: WorkloadObservation]
            do {
                seen = try await driver.observe(names)
            } catch {
                logger.debug("cannot ask the runtime about workloads", metadata: ["workload.kind": "\(kind)", "error": "\(error)"])
                continue
            }
            for (name, observation) in seen {
                guard case .stopped(let state) = observation, let instance = instances[name], instance.up, !instance.stopping else { continue }
                instances[name]?.up = false
                let generation = instance.start.generation
                enqueue(name) { await self.ended(name, generation: generation, state: state) }
            }
        }
    }

    private func ended(_ name: String, generation: UInt64, state: String) async {
        guard let instance = instances[name], instance.start.generation == generation else { return }
        logger.warning("workload stopped by itself", metadata: ["workload.name": "\(name)", "workload.state": "\(state)"])
        // Leave nothing behind (a crashed domain, an exited pod) before saying it ended, so a restart here starts clean.
        try? await drivers[instance.start.kind]?.stop(name: name, immediately: true)
        end(instance.id, start: instance.start, kind: .exited, message: "\(instance.start.kind) \(state)")
    }

    // MARK: - Restart of the agent

    /// After an agent restart: adopt instances that still run, report the rest as exited.
    public func resume(_ entries: [LedgerEntry]) async {
        for entry in entries {
            let id = entry.id
            let payload = entry.payload
            guard let payload, let start = try? Specola_V1_StartWorkload(serializedBytes: payload), !start.name.isEmpty else {
                finish(id, ok: false, message: "unreadable after an agent restart")
                continue
            }
            guard let driver = drivers[start.kind] else {
                end(id, start: start, kind: .exited, message: "the agent restarted without a \(start.kind) runtime")
                continue
            }
            let seen: WorkloadObservation?
            do {
                seen = try await driver.observe([start.name])[start.name]
            } catch {
                // Cannot tell: keep it as ours and let the watch loop decide once the runtime answers.
                logger.warning("cannot tell whether a workload survived the agent restart", metadata: ["workload.name": "\(start.name)", "error": "\(error)"])
                seen = .running
            }
            if seen == .running {
                logger.info("re-attaching to a workload that outlived the agent", metadata: ["workload.name": "\(start.name)"])
                if let older = instances[start.name] { finish(older.id, ok: false, message: "replaced by generation \(start.generation)") }
                instances[start.name] = Instance(start: start, up: true)
                report(start, .started, "still running after an agent restart")
                await learnProcesses(start, driver: driver)
            } else {
                end(id, start: start, kind: .exited, message: "not running after an agent restart")
            }
        }
    }

    // MARK: - Ledger and reports

    /// The instance is over: report it, close its ledger entry and forget it.
    private func end(_ id: String, start: Specola_V1_StartWorkload, kind: Specola_V1_WorkloadEventKind, message: String) {
        report(start, kind, message)
        finish(id, ok: kind == .stopped, message: message)
        if instances[start.name]?.start.generation == start.generation { instances.removeValue(forKey: start.name) }
    }

    private func finish(_ id: String, ok: Bool, message: String) {
        do {
            try outbox.recordInstruction(.with { $0.instructionID = id; $0.ok = ok; $0.message = message })
        } catch {
            logger.error("cannot record a workload's end in the outbox", metadata: ["instruction.id": "\(id)", "error": "\(error)"])
        }
    }

    private func report(_ start: Specola_V1_StartWorkload, _ kind: Specola_V1_WorkloadEventKind, _ message: String) {
        let event = Specola_V1_WorkloadEvent.with {
            $0.name = start.name
            $0.workloadKind = start.kind
            $0.generation = start.generation
            $0.kind = kind
            $0.message = message
            $0.atUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
        }
        do {
            _ = try outbox.append(workloadEvents: [event], atUnixMs: event.atUnixMs)
            onEvent()
        } catch {
            logger.error("cannot queue a workload event; the coordinator will not hear of it until the outbox works",
                         metadata: ["workload.name": "\(start.name)", "error": "\(error)"])
        }
    }
}
