import Foundation
import Logging
import ServiceLifecycle
import SpecolaProtocol
import Synchronization
import SpecolaProcesses
import SpecolaDaemon

/// The node agent: collects facts on a timer, queues them in the outbox and
/// keeps the coordinator link alive. SIGTERM stops collection, then drains
/// the outbox for up to `stopDrainTimeout` before exiting.
public struct Agent: Service {
    public let config: AgentConfig
    let logger: Logger
    /// Shared by the collection loop and the storage runner, which asks it to re-read after an action.
    let gluster: GlusterCollector?

    public init(config: AgentConfig, logger: Logger) {
        self.config = config
        self.logger = logger
        gluster = config.gluster.enabled ? GlusterCollector(settings: config.gluster.settings, logger: logger) : nil
    }

    /// The agent's life, in the order a newcomer reads it: check the identity, open the outbox,
    /// build the runners, resume work a previous process left running, connect, then collect
    /// and report until SIGTERM, and finally drain the outbox.
    public func run() async throws {
        try checkCertificateNamesThisNode()
        let outbox = try Outbox(path: config.dataDir + "/outbox.sqlite")
        let loop = LoopState()
        let wakeLink = Mutex<(@Sendable () -> Void)?>(nil)
        let runners = makeRunners(outbox: outbox, onEvent: { wakeLink.withLock { $0 }?() })
        let requestFull: @Sendable () -> Void = { loop.fullRequested.store(true, ordering: .relaxed) }
        let instructions = InstructionExecutor(
            outbox: outbox, work: runners.work, storage: runners.storage, logger: logger,
            onFullReportRequested: requestFull)
        // A re-issued node certificate is used from the next connection on, without a restart.
        let reloader = try config.tls.makeReloader(logger: logger)
        let reloading = Task { try? await reloader.run() }
        defer { reloading.cancel() }
        let link = CoordinatorLink(
            config: config, outbox: outbox, instructions: instructions, reloader: reloader, logger: logger,
            onFullReportRequested: requestFull)
        wakeLink.withLock { $0 = { link.nudge() } }

        // Before the link can deliver new work: pick up work that outlived a previous agent process.
        await resumeClaimedWork(ledger: outbox, runners: runners.all, logger: logger)
        let background = startRunnerLoops(runners)
        defer { background.forEach { $0.cancel() } }
        try logStart(outbox)
        let linkTask = Task { await link.run() }
        defer { linkTask.cancel() }

        let notifier = SystemdNotifier()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await cancelWhenGracefulShutdown {
                    try await collectAndReport(outbox: outbox, link: link, loop: loop, notifier: notifier)
                }
            }
            group.addTask {
                try await cancelWhenGracefulShutdown {
                    try await selfFenceWatch(link: link, work: runners.work)
                }
            }
            if let interval = notifier.watchdogInterval {
                group.addTask {
                    try await cancelWhenGracefulShutdown {
                        try await pingWatchdogWhileCollecting(notifier: notifier, interval: interval, loop: loop)
                    }
                }
            }
            do {
                try await group.waitForAll()
            } catch is CancellationError {}
        }

        notifier.stopping()
        await drainOutbox(outbox, link: link)
    }

    /// The agent refuses to start with another node's certificate (or a user's).
    func checkCertificateNamesThisNode() throws {
        let identity = try config.tls.validate()
        guard identity.role == .node, identity.name == config.nodeName else {
            throw TLSFileError(path: config.tls.cert,
                               problem: "is for \(identity), but this agent is configured as node '\(config.nodeName)'; use the node/\(config.nodeName) certificate or fix nodeName")
        }
    }

    /// The runners of the work this node carries out (tasks and HA workloads, storage actions);
    /// both share the outbox's ledger.
    struct Runners {
        let work: WorkRunner
        let storage: StorageRunner?
        var all: [any ClaimedWorkRunner] {
            var all: [any ClaimedWorkRunner] = [work]
            if let storage { all.append(storage) }
            return all
        }
    }

    func makeRunners(outbox: Outbox, onEvent: @escaping @Sendable () -> Void) -> Runners {
        Runners(
            work: WorkRunner(outbox: outbox, drivers: makeWorkDrivers(), logger: logger, onEvent: onEvent),
            storage: config.gluster.enabled
                ? StorageRunner(outbox: outbox, settings: config.gluster.actionSettings, logger: logger, onEvent: onEvent,
                                onActionEnded: { [gluster] in gluster?.refresh() }) : nil)
    }

    /// How often ended task containers whose removal failed are looked for again.
    static let containerSweepInterval = Duration.seconds(120)

    /// The workload watch, and the sweep of ended task containers when podman is on.
    func startRunnerLoops(_ runners: Runners) -> [Task<Void, Never>] {
        var loops = [Task { await runners.work.run() }]
        if config.podman.enabled {
            loops.append(Task { await runners.work.sweepPeriodically(every: Self.containerSweepInterval) })
        }
        return loops
    }

    func logStart(_ outbox: Outbox) throws {
        let pending = try outbox.pendingCount()
        let lastSeq = try outbox.lastSeq()
        logger.info("agent starting", metadata: [
            "node.name": "\(config.nodeName)", "coordinators": "\(config.coordinators.map(\.description))",
            "outbox.pending": "\(pending)", "seq.last": "\(lastSeq)",
        ])
    }

    /// Collects facts every `reportInterval`, queues them in the outbox and wakes the link; full
    /// reports on a timer or when asked. Tells systemd it is ready after the first cycle.
    func collectAndReport(outbox: Outbox, link: CoordinatorLink, loop: LoopState, notifier: SystemdNotifier) async throws {
        // SEL entries already queued are not reported again after a restart.
        let selCursor = try outbox.counter("sel").map { UInt32(truncatingIfNeeded: $0) }
        let collector = makeCollector(resumeSELAfter: selCursor)
        var lastFull = ContinuousClock.now
        var announced = false
        while !Task.isCancelled {
            let dueFull = ContinuousClock.now - lastFull >= .seconds(config.fullReportInterval)
            let forceFull = loop.fullRequested.exchange(false, ordering: .relaxed) || dueFull
            // Stamped before collecting: the leader compares it with when a storage action ended.
            let collectedAt = Int64(Date().timeIntervalSince1970 * 1000)
            if let (facts, full) = await collector.collect(forceFull: forceFull) {
                do {
                    // The commit waits for an fsync: on a thread of its own, not the pool's.
                    let report = try await onDedicatedThread("specola-outbox") {
                        try outbox.append(facts: facts, full: full, collectedAtUnixMs: collectedAt)
                    }
                    if full { lastFull = .now }
                    if let cursor = collector.selCursor, facts.hasSel {
                        try? outbox.setCounter("sel", UInt64(cursor))
                    }
                    logger.debug("report queued", metadata: ["seq": "\(report.seq)", "full": "\(full)"])
                    link.nudge()
                } catch {
                    // Keep the baseline honest: the next report must be full.
                    collector.forgetBaseline()
                    logger.error("cannot queue a report in the outbox; if the disk is full, free space in the agent's dataDir. The next report is a full one, so nothing is missed once it works",
                                 metadata: ["outbox": "\(outbox.path)", "error": "\(error)"])
                }
            }
            loop.lastCycle.withLock { $0 = .now }
            if !announced {
                notifier.ready()
                announced = true
            }
            try await sleepUntilNextReport()
        }
    }

    /// The report interval, cut short when GlusterFS needs reading at once (a brick of this node
    /// died, or a storage action ended): checked every `brickWatchInterval`, from /proc, without the CLI.
    func sleepUntilNextReport() async throws {
        let next = ContinuousClock.now + .seconds(config.reportInterval)
        guard let gluster else { return try await Task.sleep(until: next) }
        let step = min(Self.brickWatchInterval, .seconds(config.reportInterval))
        while ContinuousClock.now + step < next {
            try await Task.sleep(for: step)
            if gluster.readIsDue() { return }
        }
        try await Task.sleep(until: next)
    }

    /// How often a node's brick processes are looked up in /proc (a few file reads): every second
    /// a dead brick goes unnoticed is a second of writes that its restarted brick must heal.
    static let brickWatchInterval = Duration.milliseconds(250)

    /// Pings systemd's watchdog only while the collection loop is alive, so a hung collector trips it.
    func pingWatchdogWhileCollecting(notifier: SystemdNotifier, interval: Duration, loop: LoopState) async throws {
        while !Task.isCancelled {
            let stale = loop.lastCycle.withLock { ContinuousClock.now - $0 } > .seconds(config.reportInterval * 3 + 30)
            if !stale { notifier.watchdog() }
            try await Task.sleep(for: interval)
        }
    }

    /// After SIGTERM: sends what the outbox holds for up to `stopDrainTimeout`; the rest waits on disk.
    func drainOutbox(_ outbox: Outbox, link: CoordinatorLink) async {
        let deadline = ContinuousClock.now + .milliseconds(Int64(config.stopDrainTimeout * 1000))
        var unsent = (try? outbox.pendingCount()) ?? 0
        while unsent > 0 && ContinuousClock.now < deadline {
            link.nudge()
            try? await Task.sleep(for: .milliseconds(50))
            unsent = (try? outbox.pendingCount()) ?? 0
        }
        if unsent > 0 {
            logger.warning("agent stopped with reports unsent; they stay in the outbox and go out when the agent starts again",
                           metadata: ["outbox.pending": "\(unsent)", "stop.drain_timeout_s": "\(config.stopDrainTimeout)"])
        }
        logger.info("agent stopped", metadata: ["outbox.pending": "\(unsent)"])
    }

    /// Stops this node's work when no leader has answered for the coordinator's self-fence lease,
    /// so that the coordinator can move it elsewhere without it running twice.
    func selfFenceWatch(link: CoordinatorLink, work: WorkRunner) async throws {
        while !Task.isCancelled {
            let now = ContinuousClock.now
            let (step, next) = link.lease.check(at: now)
            switch step {
            case .fence(let silence):
                await work.stopAll(reason: "self-fence: no coordinator leader answered for \(silence)", immediately: true)
            case .resume:
                logger.notice("a leader answers again; the self-fence is over and new work may arrive")
            case nil:
                break
            }
            // Wakes when the lease would run out; a renewal meanwhile only makes this check a no-op.
            try await Task.sleep(until: next, clock: .continuous)
        }
    }

    var podmanEnvironment: [String: String] {
        var environment: [String: String] = [:]
        if !config.podman.containersConf.isEmpty { environment["CONTAINERS_CONF"] = config.podman.containersConf }
        if !config.podman.storageConf.isEmpty { environment["CONTAINERS_STORAGE_CONF"] = config.podman.storageConf }
        return environment
    }

    func makePodmanDriver() -> PodmanDriver {
        PodmanDriver(podmanPath: config.podman.path, environment: podmanEnvironment, nodeName: config.nodeName, policy: config.tasks,
                     workingDirectory: config.dataDir + "/podman",
                     logger: logger)
    }

    /// Tasks in podman containers and (where `tasks.exec` allows) as processes; HA VMs through the
    /// configured libvirt URI, HA pods through the configured podman.
    func makeWorkDrivers() -> [String: any WorkDriver] {
        var drivers: [String: any WorkDriver] = [
            "podman": makePodmanDriver(),
            "exec": ExecDriver(nodeName: config.nodeName, policy: config.tasks.exec, logger: logger),
        ]
        if !config.libvirt.uri.isEmpty { drivers["vm"] = LibvirtWorkloadDriver(uri: config.libvirt.uri, logger: logger) }
        if config.podman.enabled {
            drivers["pod"] = PodWorkloadDriver(podman: makePodmanDriver(), directory: config.dataDir + "/workloads")
        }
        return drivers
    }

    func makeCollector(resumeSELAfter: UInt32?) -> FactsCollector {
        let ipmi: IPMICollector? = config.bmc.mode == .none ? nil : IPMICollector(
            target: config.bmc.target, sdrCacheDirectory: config.dataDir + "/sdr-cache", logger: logger,
            resumeSELAfter: resumeSELAfter)
        let vms: VMCollector? = config.libvirt.uri.isEmpty ? nil : VMCollector(uri: config.libvirt.uri, logger: logger)
        let containers: ContainerCollector? = config.podman.enabled
            ? ContainerCollector(podmanPath: config.podman.path, environment: podmanEnvironment, logger: logger) : nil
        return FactsCollector(
            ipmi: ipmi, vms: vms, containers: containers, gluster: gluster,
            storage: StorageCollector(
                logger: logger, smartctlPath: config.smart.command,
                smartRecheckInterval: .milliseconds(Int64(config.smart.recheckInterval * 1000))),
            capacity: CapacityCollector(labels: config.labels),
            logger: logger)
    }
}

/// What the collection loop shares with the link and the watchdog.
final class LoopState: Sendable {
    /// Set when the next report must be full (first start, coordinator asked, baseline lost).
    let fullRequested = Atomic<Bool>(true)
    let lastCycle = Mutex<ContinuousClock.Instant>(.now)
}
