import Foundation
import Logging
import SpecolaProtocol

/// Runs every configured collector and turns the result into a full report or
/// a delta holding only the sections that changed since the last report.
public final class FactsCollector: @unchecked Sendable {
    private let ipmi: IPMICollector?
    private let vms: VMCollector?
    private let containers: ContainerCollector?
    private let gluster: GlusterCollector?
    private let storage: StorageCollector
    private let capacity: CapacityCollector
    private let logger: Logger
    /// Blocking C libraries (IPMI, libvirt) run here, off the cooperative pool.
    private let blockingQueue = DispatchQueue(label: "specola.agent.collect")
    private let lock = NSLock()
    private var lastSent: Specola_V1_NodeFacts?

    public init(ipmi: IPMICollector?, vms: VMCollector?, containers: ContainerCollector?, gluster: GlusterCollector? = nil,
                storage: StorageCollector, capacity: CapacityCollector, logger: Logger) {
        self.ipmi = ipmi
        self.vms = vms
        self.containers = containers
        self.gluster = gluster
        self.storage = storage
        self.capacity = capacity
        self.logger = logger
    }

    /// Highest SEL record id collected so far.
    public var selCursor: UInt32? { ipmi?.selCursor }

    /// Forgets the baseline, so the next `collect` yields a full report.
    public func forgetBaseline() {
        lock.withLock { lastSent = nil }
    }

    /// Returns the facts to send, or nil when nothing changed. Full when asked or when there is no baseline.
    public func collect(forceFull: Bool) async -> (facts: Specola_V1_NodeFacts, full: Bool)? {
        var current = Specola_V1_NodeFacts()
        var health: [Specola_V1_CollectorHealth] = []
        current.capacity = capacity.collect()

        let (bmc, sel, vmSection, storageSection) = await withCheckedContinuation { continuation in
            blockingQueue.async { [ipmi, vms, storage] in
                let ipmiResult = ipmi?.collect()
                continuation.resume(returning: (ipmiResult?.bmc, ipmiResult?.newSEL ?? [], vms?.collect(), storage.collect()))
            }
        }
        if let bmc {
            current.bmc = bmc
            health.append(.with { $0.name = "ipmi"; $0.ok = bmc.present; $0.message = bmc.reason })
        } else {
            current.bmc = .with { $0.present = false; $0.reason = "BMC collection disabled (bmc.mode: none)" }
        }
        if !sel.isEmpty { current.sel.entries = sel }
        current.storage = storageSection
        health.append(.with { $0.name = "storage"; $0.ok = true })
        if let vmSection {
            current.vms = vmSection
            health.append(.with { $0.name = "libvirt"; $0.ok = vmSection.available; $0.message = vmSection.reason })
        } else {
            current.vms = .with { $0.available = false; $0.reason = "VM collection disabled (libvirt.uri is empty)" }
        }
        if let containers {
            let section = await containers.collect()
            current.containers = section
            health.append(.with { $0.name = "podman"; $0.ok = section.available; $0.message = section.reason })
        } else {
            current.containers = .with { $0.available = false; $0.reason = "container collection disabled (podman.enabled: false)" }
        }
        if let gluster {
            let section = await gluster.collect()
            current.gluster = section
            // A node without GlusterFS is not a failing collector.
            let healthy = section.available || section.unavailableCause == .notInstalled
            health.append(.with { $0.name = "gluster"; $0.ok = healthy; $0.message = section.reason })
        } else {
            current.gluster = .with { $0.available = false; $0.reason = "GlusterFS collection disabled (gluster.enabled: false)" }
        }
        current.collectors.collectors = health

        return lock.withLock {
            defer {
                var baseline = current
                baseline.clearSel()
                lastSent = baseline
            }
            guard let previous = lastSent, !forceFull else { return (current, true) }
            var delta = Specola_V1_NodeFacts()
            if current.capacity != previous.capacity { delta.capacity = current.capacity }
            if current.bmc != previous.bmc { delta.bmc = current.bmc }
            if current.hasSel { delta.sel = current.sel }
            if current.storage != previous.storage { delta.storage = current.storage }
            if current.vms != previous.vms { delta.vms = current.vms }
            if current.containers != previous.containers { delta.containers = current.containers }
            if current.gluster != previous.gluster { delta.gluster = current.gluster }
            if current.collectors != previous.collectors { delta.collectors = current.collectors }
            return delta == Specola_V1_NodeFacts() ? nil : (delta, false)
        }
    }
}
