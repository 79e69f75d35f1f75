import ArgumentParser
import Foundation
import SpecolaProtocol

/// `specola status`: the coordinator and a node count by status.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show the coordinator and cluster health.")

    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        try await runReporting {
            let status = try await connection.withAPI { try await $0.status(.init()) }
            if connection.json { return try JSONOutput.print(status) }
            print("""
                Coordinator  \(status.coordinatorName) (\(status.role), \(status.version))
                Leader       \(status.leaderName.isEmpty ? "none known" : "\(status.leaderName) at \(status.leaderAddress)"), term \(status.raftTerm), commit \(status.commitIndex), applied \(status.appliedIndex)
                Nodes        \(status.nodesTotal) total: \(status.nodesReady) ready, \(status.nodesSuspect) suspect, \(status.nodesDown) down
                Sensors      \(status.sensorsCritical) critical
                """)
        }
    }
}

/// `specola nodes`: one line per node.
struct NodesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "nodes", abstract: "List nodes with their status and facts.")

    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        try await runReporting {
            let list = try await connection.withAPI { try await $0.listNodes(.init()) }
            if connection.json { return try JSONOutput.print(list) }
            if !list.pending.isEmpty {
                var waiting = Table("WAITING FOR ACCEPT", "ADDRESS", "DECLARED LABELS", "LAST SEEN")
                let now = Int64(Date().timeIntervalSince1970 * 1000)
                for node in list.pending {
                    waiting.add(node.name, node.address, NodeAdmissionCommand.labelText(node.declaredLabels), Format.ago(node.lastSeenUnixMs, now: now))
                }
                print(waiting.rendered)
                print("Let one in with `specola node accept NAME [--label KEY=VALUE]`.\n")
            }
            if list.nodes.isEmpty {
                print("No nodes have registered yet. Start specola-agent on a server with a node certificate.")
                return
            }
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            var table = Table("NAME", "STATUS", "SCHEDULING", "ALLOCS", "LAST SEEN", "CPUS", "MEMORY", "LOAD1", "BMC", "POWER", "SENSORS", "DISKS", "VMS", "CONTAINERS")
            for node in list.nodes {
                let facts = node.facts
                let critical = facts.bmc.sensors.filter { $0.state == .critical }.count
                table.add(
                    node.name, node.shownStatus, NodeShowCommand.scheduling(node), "\(node.allocations)",
                    Format.ago(node.lastSeenUnixMs, now: now),
                    "\(facts.capacity.cpuCores)", Format.bytes(facts.capacity.memoryBytes),
                    String(format: "%.2f", facts.capacity.load1),
                    facts.bmc.present ? "yes" : "no", NodeShowCommand.power(facts.bmc.power),
                    facts.bmc.present ? "\(facts.bmc.sensors.count) (\(critical) crit)" : "-",
                    "\(facts.storage.disks.count)",
                    facts.vms.available ? "\(facts.vms.vms.count)" : "-",
                    facts.containers.available ? "\(facts.containers.containers.count)" : "-")
            }
            print(table.rendered)
        }
    }
}

/// `specola node show NAME`.
struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node", abstract: "Inspect a node, or take it out of and back into service.",
        subcommands: [NodeShowCommand.self, NodeSchedulingCommand.Cordon.self, NodeSchedulingCommand.Drain.self,
                      NodeSchedulingCommand.Uncordon.self, NodeFenceCommand.Fence.self, NodeFenceCommand.Unfence.self,
                      NodeAdmissionCommand.Accept.self, NodeAdmissionCommand.Label.self])
}

/// `specola node fence|unfence NAME`.
enum NodeFenceCommand {
    static func apply(_ action: String, to name: String, force: Bool = false, connection: ConnectionOptions) async throws {
        try await runReporting {
            let request = Specola_V1_FenceRequest.with { $0.name = name; $0.action = action; $0.force = force }
            let node = try await connection.withAPI { try await $0.fence(request) }
            if connection.json { return try JSONOutput.print(node) }
            print("node \(node.name): \(node.shownStatus)\(node.statusReason.isEmpty ? "" : " (\(node.statusReason))")")
        }
    }

    struct Fence: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "fence", abstract: "Fence NAME now: power it off through its BMC (or wait out its self-fence lease), then move its work.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var name: String
        @Flag(help: "Fence even when the mass-failure brake (fencing.maxFencedFraction) holds fencing back.")
        var force = false
        func run() async throws { try await NodeFenceCommand.apply("fence", to: name, force: force, connection: connection) }
    }

    struct Unfence: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "unfence", abstract: "Power a fenced NAME back on and let it rejoin once its agent reports.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var name: String
        func run() async throws { try await NodeFenceCommand.apply("unfence", to: name, connection: connection) }
    }
}

/// `specola node cordon|drain|uncordon NAME`.
enum NodeSchedulingCommand {
    static func apply(_ action: String, to name: String, connection: ConnectionOptions) async throws {
        try await runReporting {
            let request = Specola_V1_SetNodeSchedulingRequest.with { $0.name = name; $0.action = action }
            let node = try await connection.withJobs { try await $0.setNodeScheduling(request) }
            if connection.json { return try JSONOutput.print(node) }
            print("node \(node.name): \(NodeShowCommand.scheduling(node))")
        }
    }

    struct Cordon: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "cordon", abstract: "Take no new work on NAME; running work stays.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var name: String
        func run() async throws { try await NodeSchedulingCommand.apply("cordon", to: name, connection: connection) }
    }

    struct Drain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "drain", abstract: "Stop NAME's work and place it elsewhere; take no new work.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var name: String
        func run() async throws { try await NodeSchedulingCommand.apply("drain", to: name, connection: connection) }
    }

    struct Uncordon: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "uncordon", abstract: "Put NAME back into service.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var name: String
        func run() async throws { try await NodeSchedulingCommand.apply("uncordon", to: name, connection: connection) }
    }
}

struct NodeShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show a node's sensors, disks, VMs and containers.")

    @OptionGroup var connection: ConnectionOptions

    @Argument(help: "Node name, as `specola nodes` lists it.")
    var name: String

    func run() async throws {
        try await runReporting {
            let request = Specola_V1_GetNodeRequest.with { $0.name = name }
            let node = try await connection.withAPI { try await $0.getNode(request) }
            if connection.json { return try JSONOutput.print(node) }
            print(Self.render(node, now: Int64(Date().timeIntervalSince1970 * 1000)))
        }
    }

    static func scheduling(_ node: Specola_V1_Node) -> String {
        NodeStatus.schedulingWord(cordoned: node.cordoned, draining: node.draining)
    }

    static func power(_ state: Specola_V1_PowerState) -> String {
        switch state {
        case .on: return "on"
        case .off: return "off"
        default: return "unknown"
        }
    }

    static func sensorState(_ state: Specola_V1_SensorState) -> String {
        switch state {
        case .nominal: return "nominal"
        case .warning: return "warning"
        case .critical: return "CRITICAL"
        default: return "unknown"
        }
    }

    static func render(_ node: Specola_V1_Node, now: Int64) -> String {
        let facts = node.facts
        var out = """
            Name          \(node.name)
            Status        \(node.shownStatus)\(node.statusReason.isEmpty ? "" : ": \(node.statusReason)") (last seen \(Format.ago(node.lastSeenUnixMs, now: now))), \(scheduling(node)), \(node.allocations) allocation(s)
            Address       \(node.address.isEmpty ? "-" : node.address)
            Agent         \(node.agentVersion)
            Reports       \(node.reportsApplied) applied, last seq \(node.lastAppliedSeq), \(node.seqGaps) gaps
            Host          \(facts.capacity.hostname) (\(facts.capacity.kernel))
            Capacity      \(facts.capacity.cpuCores) cores, \(Format.bytes(facts.capacity.memoryBytes)) memory (\(Format.bytes(facts.capacity.memoryAvailableBytes)) available), load \(String(format: "%.2f %.2f %.2f", facts.capacity.load1, facts.capacity.load5, facts.capacity.load15))
            Labels        \(facts.capacity.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))

            """
        out += "\nBMC\n"
        if facts.bmc.present {
            out += "  source \(facts.bmc.source), chassis power \(power(facts.bmc.power))\n"
            var sensors = Table("  SENSOR", "TYPE", "READING", "STATE")
            for sensor in facts.bmc.sensors {
                let reading = sensor.hasReading_p ? String(format: "%.2f %@", sensor.reading, sensor.units) : "-"
                sensors.add("  \(sensor.name)", sensor.type, reading, sensorState(sensor.state))
            }
            out += sensors.rendered + "\n"
        } else {
            out += "  none: \(facts.bmc.reason)\n"
        }
        if !node.recentSel.isEmpty {
            out += "\nRecent SEL\n"
            var sel = Table("  ID", "TIME", "SENSOR", "STATE", "EVENT")
            for entry in node.recentSel.suffix(10) {
                let time = Date(timeIntervalSince1970: TimeInterval(entry.timestampUnix)).formatted(.iso8601)
                sel.add("  \(entry.recordID)", time, entry.sensorName, sensorState(entry.state), entry.event)
            }
            out += sel.rendered + "\n"
        }
        out += "\nDisks\n"
        var disks = Table("  DISK", "SIZE", "MODEL", "SMART")
        for disk in facts.storage.disks {
            disks.add("  \(disk.name)", Format.bytes(disk.sizeBytes), disk.model.isEmpty ? "-" : disk.model, disk.smartStatus)
        }
        out += disks.rendered + "\n"
        out += "\nFilesystems\n"
        var filesystems = Table("  MOUNT", "DEVICE", "TYPE", "SIZE", "AVAILABLE")
        for fs in facts.storage.filesystems {
            filesystems.add("  \(fs.mountPoint)", fs.device, fs.fsType, Format.bytes(fs.sizeBytes), Format.bytes(fs.availableBytes))
        }
        out += filesystems.rendered + "\n"
        out += "\nVMs"
        if facts.vms.available {
            out += " (\(facts.vms.uri))\n"
            var vms = Table("  NAME", "STATE", "VCPUS", "MEMORY")
            for vm in facts.vms.vms { vms.add("  \(vm.name)", vm.state, "\(vm.vcpus)", Format.bytes(vm.memoryKib * 1024)) }
            out += vms.rendered + "\n"
        } else {
            out += "\n  unavailable: \(facts.vms.reason)\n"
        }
        out += "\nContainers\n"
        if facts.containers.available {
            var containers = Table("  NAME", "IMAGE", "STATE", "POD")
            for container in facts.containers.containers {
                containers.add("  \(container.name)", container.image, container.state, container.podID.isEmpty ? "-" : String(container.podID.prefix(12)))
            }
            out += containers.rendered + "\n"
            if !facts.containers.pods.isEmpty {
                out += "\nPods\n"
                var pods = Table("  NAME", "STATUS", "CONTAINERS")
                for pod in facts.containers.pods { pods.add("  \(pod.name)", pod.status, "\(pod.containerIds.count)") }
                out += pods.rendered + "\n"
            }
        } else {
            out += "  unavailable: \(facts.containers.reason)\n"
        }
        let unhealthy = facts.collectors.collectors.filter { !$0.ok }
        if !unhealthy.isEmpty {
            out += "\nCollector problems\n"
            for collector in unhealthy { out += "  \(collector.name): \(collector.message)\n" }
        }
        return out
    }
}
