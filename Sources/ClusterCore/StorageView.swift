import SpecolaWire

/// The cluster's GlusterFS volumes assembled from every node's report: each volume once,
/// each brick from the node that hosts it (which alone knows its process, space and disks).
public enum StorageView {
    /// A brick with the node that hosts it; `node` is empty when no node claims it.
    public struct Brick: Sendable, Equatable {
        public var node: String
        public var brick: Specola_V1_GlusterBrick
        /// Some node read `volume status` this cycle, so `brick.online` is known; otherwise it is a guess.
        public var statusKnown = true
        public var key: String { StorageView.key(brick) }
    }

    /// A volume with its bricks in gluster's order.
    public struct Volume: Sendable, Equatable {
        public var volume: Specola_V1_GlusterVolume
        public var bricks: [Brick]
        /// The node whose agent's heal summary gave every brick's heal counts; "" when no report
        /// had any (then every count is unknown).
        public var healCountsFrom = ""
        public var name: String { volume.name }

        /// The bricks of one replica (or disperse) set.
        public func replicaSet(_ index: UInt32) -> [Brick] { bricks.filter { $0.brick.replicaSet == index } }
        public var replicaSets: [UInt32] { Array(Set(bricks.map(\.brick.replicaSet))).sorted() }
        /// Files in split-brain, as any reporting node listed them.
        public var splitBrainFiles: [String] { volume.splitBrainFiles }
    }

    /// "HOST:PATH", the way gluster names a brick.
    public static func key(_ brick: Specola_V1_GlusterBrick) -> String { "\(brick.host):\(brick.path)" }

    /// Every volume any node reports, by name. The volume's own record comes from a node that
    /// hosts one of its bricks (the first by name), else from any node.
    public static func volumes(_ nodes: [String: Specola_V1_Node]) -> [Volume] {
        volumes(Array(nodes.values))
    }

    public static func volumes(_ nodes: [Specola_V1_Node]) -> [Volume] {
        var reports: [String: [(node: String, volume: Specola_V1_GlusterVolume)]] = [:]
        var collectedAt: [String: Int64] = [:]
        for node in nodes.sorted(by: { $0.name < $1.name }) where node.facts.gluster.available {
            collectedAt[node.name] = node.glusterCollectedAtUnixMs
            for volume in node.facts.gluster.volumes { reports[volume.name, default: []].append((node.name, volume)) }
        }
        return reports.keys.sorted().map { name in
            let views = reports[name]!
            let base = views.first { $0.volume.bricks.contains(where: \.local) } ?? views[0]
            var volume = base.volume
            volume.bricks = []
            volume.splitBrainFiles = Array(Set(views.flatMap(\.volume.splitBrainFiles))).sorted()
            // Heal counts are the same cluster-wide, so they all come from one agent's summary (one
            // crawl, one moment): the report that counts the most bricks, then the latest, then by name.
            let counted = { (report: (node: String, volume: Specola_V1_GlusterVolume)) in report.volume.bricks.filter(\.hasHealPending).count }
            let counter = views.filter { counted($0) > 0 }.min { a, b in
                if counted(a) != counted(b) { return counted(a) > counted(b) }
                let (ta, tb) = (collectedAt[a.node] ?? 0, collectedAt[b.node] ?? 0)
                return ta != tb ? ta > tb : a.node < b.node
            }
            let bricks = base.volume.bricks.map { brick -> Brick in
                let host = views.first { report in report.volume.bricks.contains { $0.local && key($0) == key(brick) } }
                // The hosting node's view has the process and disk; the counts are the counter's.
                var chosen = host?.volume.bricks.first { key($0) == key(brick) } ?? brick
                chosen.clearHealPending()
                chosen.clearSplitBrain()
                chosen.clearPossiblyHealing()
                chosen.clearHealTotal()
                if let counts = counter?.volume.bricks.first(where: { key($0) == key(brick) }) {
                    if counts.hasHealPending { chosen.healPending = counts.healPending }
                    if counts.hasSplitBrain { chosen.splitBrain = counts.splitBrain }
                    if counts.hasPossiblyHealing { chosen.possiblyHealing = counts.possiblyHealing }
                    if counts.hasHealTotal { chosen.healTotal = counts.healTotal }
                    chosen.healStatus = counts.healStatus
                }
                // Whether the brick runs is the same from every peer: take it from a view that could read it.
                var known = true
                if (host?.volume ?? base.volume).statusUnreadable {
                    let readable = views.first { !$0.volume.statusUnreadable }?.volume.bricks.first { key($0) == key(brick) }
                    if let readable { chosen.online = readable.online } else { known = false }
                }
                return Brick(node: host?.node ?? "", brick: chosen, statusKnown: known)
            }
            return Volume(volume: volume, bricks: bricks, healCountsFrom: counter?.node ?? "")
        }
    }

    /// The list `specola volumes` prints: every volume, and every node with what it said about GlusterFS.
    public static func volumeList(_ nodes: [Specola_V1_Node]) -> Specola_V1_GlusterVolumeList {
        var list = Specola_V1_GlusterVolumeList()
        for node in nodes.sorted(by: { $0.name < $1.name }) {
            let gluster = node.facts.gluster
            list.nodes.append(.with {
                $0.name = node.name
                $0.status = node.shownStatus
                $0.reported = node.facts.hasGluster
                $0.available = gluster.available
                $0.reason = node.facts.hasGluster ? gluster.reason : "no GlusterFS report from this node's agent"
                $0.errors = gluster.errors
            })
        }
        list.volumes = volumes(nodes).map { volume in
            .with { view in
                view.volume = volume.volume
                view.bricks = volume.bricks.map { brick in .with { $0.node = brick.node; $0.brick = brick.brick } }
                view.healCountsFrom = volume.healCountsFrom
            }
        }
        return list
    }

    /// The host name gluster knows `node` by: the host of a brick it holds, else what its peers call it.
    public static func glusterHost(of node: String, in nodes: [String: Specola_V1_Node]) -> String? {
        guard let gluster = nodes[node]?.facts.gluster, gluster.available else { return nil }
        for volume in gluster.volumes {
            if let brick = volume.bricks.first(where: \.local) { return brick.host }
        }
        let uuid = gluster.localPeerUuid
        guard !uuid.isEmpty else { return nil }
        for other in nodes.values.sorted(by: { $0.name < $1.name }) where other.name != node {
            if let peer = other.facts.gluster.peers.first(where: { $0.uuid == uuid && !$0.local }) { return peer.hostname }
        }
        return nil
    }

    /// Nodes that hold the only up-to-date copy of some data: a brick of theirs lists entries
    /// to heal while no other brick of its replica set does (so no other copy is current).
    /// By node, the reason in words. Fencing must not power such a node off.
    public static func soleHealSources(_ nodes: [String: Specola_V1_Node]) -> [String: String] {
        var sources: [String: String] = [:]
        for volume in volumes(nodes) {
            for set in volume.replicaSets {
                let bricks = volume.replicaSet(set)
                let pending = bricks.filter { $0.brick.hasHealPending && $0.brick.healPending > 0 && !$0.node.isEmpty }
                guard pending.count == 1, let source = pending.first, bricks.count > 1 else { continue }
                let reason = "brick \(source.key) of volume \(volume.name) holds the only up-to-date copy of \(source.brick.healPending) entries still to heal"
                if sources[source.node] == nil { sources[source.node] = reason }
            }
        }
        return sources
    }
}
