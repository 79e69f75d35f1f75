import ArgumentParser
import Foundation
import SpecolaClusterCore
import SpecolaProtocol

/// `specola volumes`: GlusterFS volumes and their bricks, from the node facts the leader holds.
struct VolumesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "volumes",
        abstract: "List GlusterFS volumes with their bricks, heal backlog and split-brain counts.",
        aliases: ["storage"])

    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        try await runReporting {
            let list = try await connection.withAPI { try await $0.listNodes(.init()) }
            let overview = GlusterOverview.build(from: list.nodes)
            if connection.json { return try JSONOutput.print(overview) }
            print(GlusterOverview.render(overview))
        }
    }
}

/// The cluster's volumes assembled from every node's GlusterFS section.
enum GlusterOverview {
    /// Each volume once, each brick from the node hosting it (`StorageView`, shared with the heal planner).
    static func build(from nodes: [Specola_V1_Node]) -> Specola_V1_GlusterVolumeList {
        StorageView.volumeList(nodes)
    }

    static func render(_ list: Specola_V1_GlusterVolumeList) -> String {
        var out = ""
        if list.volumes.isEmpty {
            out += "No GlusterFS volumes reported.\n"
        } else {
            var volumes = Table("VOLUME", "TYPE", "STATUS", "REPLICA", "BRICKS ONLINE", "HEAL PENDING", "SPLIT-BRAIN", "QUORUM", "FAVORITE CHILD")
            for view in list.volumes {
                let volume = view.volume
                let online = view.bricks.filter(\.brick.online).count
                let replica = volume.arbiterCount > 0 ? "\(volume.replicaCount) (arbiter \(volume.arbiterCount))" : "\(volume.replicaCount)"
                volumes.add(
                    volume.name, volume.type, volume.status, replica, "\(online)/\(view.bricks.count)",
                    most(view.bricks.map(\.brick), \.hasHealPending, \.healPending),
                    most(view.bricks.map(\.brick), \.hasSplitBrain, \.splitBrain),
                    volume.options["cluster.quorum-type"] ?? "-", volume.options["cluster.favorite-child-policy"] ?? "-")
            }
            out += volumes.rendered + "\n\n"
            var bricks = Table("VOLUME", "BRICK", "NODE", "ONLINE", "PID", "FREE", "DISKS", "PENDING", "SPLIT-BRAIN", "HEALING")
            for view in list.volumes {
                for entry in view.bricks {
                    let brick = entry.brick
                    bricks.add(
                        view.volume.name, "\(brick.host):\(brick.path)\(brick.arbiter ? " (arbiter)" : "")",
                        entry.node.isEmpty ? "-" : entry.node, brick.online ? "yes" : "NO",
                        brick.pid > 0 ? "\(brick.pid)" : "-",
                        brick.sizeBytes > 0 ? Format.bytes(brick.freeBytes) : "-",
                        brick.disks.isEmpty ? "-" : brick.disks.joined(separator: ","),
                        brick.hasHealPending ? "\(brick.healPending)" : "?",
                        brick.hasSplitBrain ? "\(brick.splitBrain)" : "?",
                        brick.hasPossiblyHealing ? "\(brick.possiblyHealing)" : "?")
                }
            }
            out += bricks.rendered + "\n"
            for view in list.volumes where view.volume.replicaCount > 1 || view.volume.disperseCount > 0 {
                out += view.healCountsFrom.isEmpty
                    ? "Heal counts of \(view.volume.name): unknown (no agent's heal summary counted its bricks)\n"
                    : "Heal counts of \(view.volume.name): from \(view.healCountsFrom)'s heal summary\n"
            }
        }
        let silent = list.nodes.filter { !$0.available }
        if !silent.isEmpty {
            out += "\nNodes without GlusterFS\n"
            for node in silent { out += "  \(node.name) (\(node.status)): \(node.reason)\n" }
        }
        let troubled = list.nodes.filter { !$0.errors.isEmpty }
        if !troubled.isEmpty {
            out += "\nRead problems\n"
            for node in troubled { for error in node.errors { out += "  \(node.name): \(error)\n" } }
        }
        return out
    }

    /// The largest count over the bricks, "?" when none has it. Not the sum: an entry to
    /// heal is listed on every brick that holds a good copy of it.
    private static func most(
        _ bricks: [Specola_V1_GlusterBrick], _ has: KeyPath<Specola_V1_GlusterBrick, Bool>,
        _ value: KeyPath<Specola_V1_GlusterBrick, UInt64>
    ) -> String {
        let known = bricks.filter { $0[keyPath: has] }
        return known.isEmpty ? "?" : "\(known.map { $0[keyPath: value] }.max()!)"
    }
}

/// `specola volume show|heal`.
struct VolumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "volume", abstract: "Inspect a GlusterFS volume, or heal it.",
        subcommands: [VolumeShowCommand.self, VolumeHealCommand.self, VolumePolicyCommand.self])
}

/// `specola volume show VOL`: bricks, heal counts, split-brain files, and the heal planner's actions with their reasons.
struct VolumeShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Show a volume's bricks, heal backlog, split-brain files and its storage actions (pending and recent) with their reasons.")

    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The volume's name, as `specola volumes` lists it.") var name: String

    func run() async throws {
        try await runReporting {
            let (list, detail) = try await connection.withAPI { api in
                (try await api.listNodes(.init()), try await api.getVolume(.with { $0.name = name }))
            }
            let overview = GlusterOverview.build(from: list.nodes)
            guard let view = overview.volumes.first(where: { $0.volume.name == name }) else {
                throw CLIError(VolumeShowCommand.unknown(name, known: overview.volumes.map(\.volume.name)), exitCode: 4)
            }
            if connection.json {
                return print("{\"volume\":\(try view.jsonString(options: JSONOutput.options)),\"detail\":\(try detail.jsonString(options: JSONOutput.options))}")
            }
            print(Self.render(view, detail, nowUnixMs: Int64(Date().timeIntervalSince1970 * 1000)))
        }
    }

    static func unknown(_ name: String, known: [String]) -> String {
        "no volume named '\(name)'; `specola volumes` lists them (known: \(known.isEmpty ? "none" : known.joined(separator: ", ")))"
    }

    static func render(_ view: Specola_V1_GlusterVolumeView, _ detail: Specola_V1_VolumeDetail, nowUnixMs: Int64) -> String {
        var list = Specola_V1_GlusterVolumeList()
        list.volumes = [view]
        var out = GlusterOverview.render(list)
        if detail.hasPolicy {
            out += "\nPolicy (" + (detail.policy.setBy == "config" ? "coordinator config" : "set by \(detail.policy.setBy)") + ")\n"
            out += "  " + Self.policyLine(detail.policy) + "\n"
        }
        if !view.volume.splitBrainFiles.isEmpty {
            out += "\nSplit-brain files\n" + view.volume.splitBrainFiles.map { "  \($0)\n" }.joined()
        }
        if !detail.heldBack.isEmpty {
            out += "\nHeld back by the heal planner\n" + detail.heldBack.map { "  \($0)\n" }.joined()
        }
        guard !detail.actions.isEmpty else { return out + "\nNo storage actions.\n" }
        var table = Table("ACTION", "KIND", "STATE", "NODE", "BRICK", "CREATED", "BY", "REASON", "OUTCOME")
        for action in detail.actions {
            let brick = action.newBrick.isEmpty ? action.brick : "\(action.brick) -> \(action.newBrick)"
            table.add(
                action.id, Self.kind(action), Self.state(action.state), action.node, brick.isEmpty ? "-" : brick,
                Format.ago(action.createdAtUnixMs, now: nowUnixMs), action.requestedBy, action.reason,
                action.message.isEmpty ? "-" : action.message)
        }
        return out + "\nStorage actions (newest first)\n" + table.rendered + "\n"
    }

    static func policyLine(_ policy: Specola_V1_VolumeStoragePolicy) -> String {
        var line = "split-brain \(policy.splitBrain)"
        if !policy.sourceBrick.isEmpty { line += " (source \(policy.sourceBrick))" }
        line += ", priority \(policy.priority)"
        line += policy.shdMaxThreads > 0 ? ", cluster.shd-max-threads \(policy.shdMaxThreads)" : ", cluster.shd-max-threads as gluster has it"
        line += ", heals at \((StoragePolicy.HealPriority(committed: policy.healPriority) ?? .normal).rawValue) priority"
        return line
    }

    static func kind(_ action: Specola_V1_StorageAction) -> String {
        switch action.kind {
        case .restartBrick: return "restart-brick"
        case .replaceBrick: return "replace-brick"
        case .heal: return action.full ? "heal --full" : "heal"
        case .resolveSplitBrain: return "split-brain \(action.splitBrainPolicy)"
        case .setOption: return "set \(action.optionName)=\(action.optionValue)"
        case .unspecified, .UNRECOGNIZED: return "?"
        }
    }

    static func state(_ state: Specola_V1_StorageActionState) -> String {
        switch state {
        case .pending: return "pending"
        case .succeeded: return "succeeded"
        case .failed: return "FAILED"
        case .unspecified, .UNRECOGNIZED: return "?"
        }
    }
}

/// Commits an operator's storage action and prints it.
enum StorageRequestCommand {
    static func submit(_ request: Specola_V1_StorageRequest, connection: ConnectionOptions) async throws {
        try await runReporting {
            let action = try await connection.withAPI { try await $0.requestStorageAction(request) }
            if connection.json { return try JSONOutput.print(action) }
            print("\(action.id): \(StorageBook.describe(action)) committed; node \(action.node) carries it out. `specola volume show \(action.volume)` follows it.")
        }
    }
}

/// `specola volume heal VOL [--full]`.
struct VolumeHealCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "heal", abstract: "Start a heal of a volume (`gluster volume heal`), run once by a node hosting one of its bricks.")

    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The volume's name.") var name: String
    @Flag(help: "Crawl the whole volume instead of the heal index.") var full = false

    func run() async throws {
        try await StorageRequestCommand.submit(.with { $0.volume = name; $0.action = "heal"; $0.full = full }, connection: connection)
    }
}

/// `specola volume policy VOL [--split-brain P] [--source-brick B] [--priority N] [--shd-max-threads N] [--heal-priority P]`.
struct VolumePolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Set how a volume is repaired: its split-brain rule, its priority in the heal queue, its heal throttle and heal priority.",
        discussion: "Committed to the replicated state; it overrides the coordinator config's storage.volumes entry. Options not given keep the value in force.")

    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The volume's name.") var name: String
    @Option(name: .customLong("split-brain"), help: "latest-mtime, bigger-file, source-brick or manual (an alert names each file).") var splitBrain: String?
    @Option(name: .customLong("source-brick"), help: "For source-brick: the brick whose copies win, HOST:PATH.") var sourceBrick: String?
    @Option(help: "Higher first: this volume's repairs take the replacement slots before lower ones.") var priority: Int32?
    @Option(name: .customLong("shd-max-threads"), help: "cluster.shd-max-threads the planner keeps set (1-64); 0 leaves gluster's value.") var shdMaxThreads: UInt32?
    @Option(name: .customLong("heal-priority"), help: "normal (heals are served like client I/O; the default) or least (gluster's default: heals yield to clients).") var healPriority: String?

    func validate() throws {
        if let splitBrain, StoragePolicy.SplitBrainPolicy(rawValue: splitBrain) == nil {
            throw ValidationError("'\(splitBrain)' is not a split-brain policy; use one of \(StoragePolicy.SplitBrainPolicy.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let healPriority, StoragePolicy.HealPriority(rawValue: healPriority) == nil {
            throw ValidationError(StoragePolicy.HealPriority.unknown(healPriority))
        }
        if splitBrain == nil, sourceBrick == nil, priority == nil, shdMaxThreads == nil, healPriority == nil {
            throw ValidationError("give at least one of --split-brain, --source-brick, --priority, --shd-max-threads, --heal-priority")
        }
    }

    func run() async throws {
        try await runReporting {
            let detail = try await connection.withAPI { api in
                let current = try await api.getVolume(.with { $0.name = name })
                var policy = current.policy
                if let splitBrain { policy.splitBrain = splitBrain }
                if let sourceBrick { policy.sourceBrick = sourceBrick }
                if policy.splitBrain != StoragePolicy.SplitBrainPolicy.sourceBrick.rawValue && sourceBrick == nil { policy.sourceBrick = "" }
                if let priority { policy.priority = priority }
                if let shdMaxThreads { policy.shdMaxThreads = shdMaxThreads }
                if let healPriority { policy.healPriority = healPriority }
                _ = try await api.requestStorageAction(.with {
                    $0.volume = name
                    $0.action = "policy"
                    $0.policy = policy
                })
                return try await api.getVolume(.with { $0.name = name })
            }
            if connection.json { return try JSONOutput.print(detail.policy) }
            print("\(name): \(VolumeShowCommand.policyLine(detail.policy)) (set by \(detail.policy.setBy))")
        }
    }
}

/// `specola brick replace VOL OLD NEW [--force]`.
struct BrickCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "brick", abstract: "Move a GlusterFS brick.", subcommands: [BrickReplaceCommand.self])
}

struct BrickReplaceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replace",
        abstract: "Replace brick OLD of VOL by NEW (`replace-brick ... commit force`, then a full heal), run once by NEW's node.",
        discussion: "OLD and NEW are HOST:PATH as `specola volumes` shows bricks. NEW's parent directory must exist on its node. Refused while another brick of OLD's replica set is unhealthy, or when NEW's node already holds a brick of that set, unless --force.")

    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The volume's name.") var volume: String
    @Argument(help: "The brick to replace, HOST:PATH.") var old: String
    @Argument(help: "The new brick, HOST:PATH (an empty directory).") var new: String
    @Flag(help: "Replace even when redundancy would drop further or NEW's node holds a brick of the same replica set.") var force = false

    func run() async throws {
        try await StorageRequestCommand.submit(.with {
            $0.volume = volume
            $0.action = "replace-brick"
            $0.oldBrick = old
            $0.newBrick = new
            $0.force = force
        }, connection: connection)
    }
}
