import SpecolaClusterCore
import Foundation
import SpecolaProtocol
import SpecolaRaft

/// Disaster recovery: seeds a brand-new replica's Raft log from a file written
/// by `specola snapshot save`. Run it on every replica of the new group with
/// the same file; their configs' `peers` become the new voters.
public enum Restore {
    public static func run(snapshotFile: String, config: CoordinatorConfig) throws -> String {
        let path = config.dataDir + "/raft.sqlite"
        if FileManager.default.fileExists(atPath: path) {
            throw StoreError(path: path, problem: "already exists; restore only seeds an empty replica — move the old data dir aside first")
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: snapshotFile))
        } catch {
            throw StoreError(path: snapshotFile, problem: "cannot read the snapshot file (\(error.localizedDescription))")
        }
        var image: Specola_V1_ClusterSnapshot
        do {
            image = try Specola_V1_ClusterSnapshot(serializedBytes: data)
        } catch {
            throw StoreError(path: snapshotFile, problem: "is not a Specola snapshot (\(error)); write one with `specola snapshot save`")
        }
        guard image.appliedIndex > 0 else {
            throw StoreError(path: snapshotFile, problem: "holds no applied index; it was not written by `specola snapshot save`")
        }
        // The new group's addresses come from this config, not from the lost group.
        let peers = config.peers.isEmpty ? [config.selfMember] : config.peers
        image.members = peers
        let voters = Set(peers.map(\.id))
        let term = max(image.appliedTerm, 1)
        let snapshot = Snapshot(
            meta: SnapshotMeta(index: image.appliedIndex, term: term, config: ConfigState(voters: voters)),
            data: try image.serializedBytes())
        let storage = try RaftStorage(path: path)
        try storage.persist(hardState: HardState(term: term, vote: nil, commit: image.appliedIndex), entries: [], snapshot: snapshot)
        return "restored \(image.nodes.count) nodes and \(image.kv.count) keys at index \(image.appliedIndex) into \(path); voters \(voters.sorted())"
    }
}
