import ArgumentParser
import Foundation
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
    /// Each volume as reported by a node that hosts one of its bricks (the first by name),
    /// else by any node; each brick from the node that hosts it, else from that report.
    static func build(from nodes: [Specola_V1_Node]) -> Specola_V1_GlusterVolumeList {
        var list = Specola_V1_GlusterVolumeList()
        let sorted = nodes.sorted { $0.name < $1.name }
        var reports: [String: [(node: String, volume: Specola_V1_GlusterVolume)]] = [:]
        for node in sorted {
            let gluster = node.facts.gluster
            list.nodes.append(.with {
                $0.name = node.name
                $0.status = node.status
                $0.reported = node.facts.hasGluster
                $0.available = gluster.available
                $0.reason = node.facts.hasGluster ? gluster.reason : "no GlusterFS report from this node's agent"
                $0.errors = gluster.errors
            })
            guard gluster.available else { continue }
            for volume in gluster.volumes { reports[volume.name, default: []].append((node.name, volume)) }
        }
        for name in reports.keys.sorted() {
            let views = reports[name]!
            let base = views.first { $0.volume.bricks.contains(where: \.local) } ?? views[0]
            var view = Specola_V1_GlusterVolumeView()
            view.volume = base.volume
            view.volume.bricks = []
            for brick in base.volume.bricks {
                let host = views.first { report in
                    report.volume.bricks.contains { $0.local && $0.host == brick.host && $0.path == brick.path }
                }
                var chosen = host?.volume.bricks.first { $0.host == brick.host && $0.path == brick.path } ?? brick
                // The hosting node's view has the process and disk; heal counts of a brick are
                // the same cluster-wide, so any report that has them will do.
                if !chosen.hasHealPending, brick.hasHealPending {
                    chosen.healPending = brick.healPending
                    chosen.splitBrain = brick.splitBrain
                    chosen.possiblyHealing = brick.possiblyHealing
                    chosen.healTotal = brick.healTotal
                }
                view.bricks.append(.with { $0.node = host?.node ?? ""; $0.brick = chosen })
            }
            list.volumes.append(view)
        }
        return list
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
