import Foundation
import GRPCCore
import SpecolaProtocol
import TestSupport
import Testing
import CooperativePoolWatch

/// The direct Raft channel between real replicas, and a group upgraded to it one replica at a time.
@Suite(.serialized, .processTest, .watchesCooperativePool) struct PeerChannelTests {
    /// What replica `id` holds for `key`, read there without Raft.
    static func staleGet(_ group: ReplicaGroup, _ id: UInt64, _ key: String) async -> String? {
        try? await group.pool.call(group.member(id).endpoint, timeout: .seconds(2)) { client, options in
            let response = try await Specola_V1_KV.Client(wrapping: client).get(.with { $0.key = key; $0.stale = true }, options: options)
            return response.found ? String(decoding: response.kv.value, as: UTF8.self) : nil
        }
    }

    static func log(_ group: ReplicaGroup, _ id: UInt64) -> String { group.process(id)?.log ?? "" }

    /// c3 is configured as before the direct channel (no raftAddress anywhere in its config):
    /// c1 and c2 use the channel between them, dial c3's address, find nothing and reach it over
    /// gRPC, and c3 reaches them over gRPC. Every write commits on all three, whoever leads. Then
    /// c3 is upgraded and restarted, and the others reach it on the channel.
    @Test func aGroupUpgradesToTheDirectChannelOneReplicaAtATime() async throws {
        let group = try ReplicaGroup(size: 3, grpcOnly: [3])
        do {
            try await group.startAll()
            let kv = group.kvClient()
            for i in 0..<20 { #expect(await kv.put("mixed/\(i)", "v\(i)").value != nil) }
            for id in group.ids {
                try await waitUntil("c\(id) to hold the writes") { await Self.staleGet(group, id, "mixed/19") == "v19" }
            }
            for id: UInt64 in [1, 2] {
                try await waitUntil("c\(id) to open the direct channel to the other upgraded replica") {
                    Self.log(group, id).contains("direct Raft channel up")
                }
                #expect(Self.log(group, id).contains("no direct Raft channel to this replica"))
            }
            #expect(!Self.log(group, 3).contains("direct Raft channel"))

            // c3 leads: it sends over gRPC, and the others answer it over gRPC.
            let leader = try await group.waitForLeader()
            if leader != 3 {
                let transfer = try await group.cli(["leader", "transfer", "--to", "3"], via: leader)
                #expect(transfer.status == 0, "\(transfer.stderr)")
            }
            try await waitUntil("c3 to lead") { await group.leader() == 3 }
            for i in 20..<40 { #expect(await kv.put("mixed/\(i)", "v\(i)").value != nil) }
            for id in group.ids {
                try await waitUntil("c\(id) to hold the later writes") { await Self.staleGet(group, id, "mixed/39") == "v39" }
            }

            // The upgrade of the last replica: it listens on its raftAddress once restarted.
            try group.useDirectChannel(3)
            try await group.kill(3)
            try await group.start(3)
            try await waitUntil("c3 to listen on the direct channel") { Self.log(group, 3).contains("direct Raft channel listening") }
            try await waitUntil("c3 to open the direct channel to both others") {
                Self.log(group, 3).components(separatedBy: "direct Raft channel up").count - 1 >= 2
            }
            for i in 40..<60 { #expect(await kv.put("mixed/\(i)", "v\(i)").value != nil) }
            for id in group.ids {
                try await waitUntil("c\(id) to hold the writes after the upgrade") { await Self.staleGet(group, id, "mixed/59") == "v59" }
            }
            await group.shutdown()
        } catch {
            FileHandle.standardError.write(Data("replica group failed: \(error)\n\(group.logTails())\n".utf8))
            await group.shutdown()
            throw error
        }
    }
}
