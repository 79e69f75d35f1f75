import SpecolaClusterCore
import GRPCCore
import Logging
import SpecolaProtocol
import SpecolaRaft

/// Replica membership, leadership transfer and whole-state snapshots for disaster recovery.
struct MembershipService: Specola_V1_Membership.SimpleServiceProtocol {
    let replica: Replica
    /// Settled before a requested leadership transfer, so no notification goes out twice.
    let alerts: AlertController
    let logger: Logger
    let access: AccessGate

    func listMembers(request: Specola_V1_ListMembersRequest, context: ServerContext) async throws -> Specola_V1_ListMembersResponse {
        try await access.check(context, .clusterRead, .cluster)
        return await describe()
    }

    private func describe() async -> Specola_V1_ListMembersResponse {
        let config = await replica.membership
        let book = await replica.allMembers
        let leader = await replica.leaderID
        let term = await replica.term
        let commit = await replica.commitIndex
        let ids = config.voters.union(config.learners).sorted()
        return .with {
            $0.leaderID = leader ?? 0
            $0.term = term
            $0.commitIndex = commit
            $0.members = ids.map { id in
                .with {
                    $0.member = book[id] ?? .with { $0.id = id; $0.name = "replica-\(id)" }
                    $0.kind = config.voters.contains(id) ? "voter" : "learner"
                    $0.leader = id == leader
                }
            }
        }
    }

    func addMember(request: Specola_V1_AddMemberRequest, context: ServerContext) async throws -> Specola_V1_ListMembersResponse {
        try await access.audited(context, .membershipChange, Resource(kind: "replica", name: "\(request.member.id)"), request: request) { caller in
            try await addMember(request, by: caller)
        }
    }

    private func addMember(_ request: Specola_V1_AddMemberRequest, by caller: Principal) async throws -> Specola_V1_ListMembersResponse {
        let member = request.member
        guard member.id != 0, !member.name.isEmpty, HostPort(parsing: member.address) != nil else {
            throw RPCError(code: .invalidArgument, message: "a member needs a non-zero id, a name and an address HOST:PORT")
        }
        guard member.raftAddress.isEmpty || HostPort(parsing: member.raftAddress) != nil else {
            throw RPCError(code: .invalidArgument, message: "raft address '\(member.raftAddress)' is not HOST:PORT")
        }
        // The address must be known before the new replica is asked to vote or replicate.
        _ = try await serving {
            try await replica.propose(.with {
                $0.proposedAtUnixMs = WallClock.nowUnixMs()
                $0.setMember = .with { $0.member = member }
            })
        }
        // A voter joins as a learner first and votes once it holds the committed log, so the
        // group's majority never waits on a replica that is still copying (etcd's learner flow).
        if !(await replica.membership.learners.contains(member.id)) {
            try await serving { try await replica.proposeMembership(.addLearner(member.id)) }
        }
        if !request.learner {
            let deadline = ContinuousClock.now + .seconds(60)
            while !(await replica.holdsCommittedLog(member.id)) {
                guard ContinuousClock.now < deadline else {
                    throw RPCError(code: .deadlineExceeded, message: "replica \(member.id) joined as a learner but did not catch up within 60 s; check that it runs with `join: true` and reaches the leader, then run `specola members add` again to promote it")
                }
                await replica.waitForProgress(within: .milliseconds(200))
            }
            try await serving { try await replica.proposeMembership(.promoteLearner(member.id)) }
        }
        logger.info("replica added", metadata: ["member.id": "\(member.id)", "member.name": "\(member.name)", "by": "\(caller)"])
        return await describe()
    }

    func removeMember(request: Specola_V1_RemoveMemberRequest, context: ServerContext) async throws -> Specola_V1_ListMembersResponse {
        try await access.audited(context, .membershipChange, Resource(kind: "replica", name: "\(request.id)"), request: request) { caller in
            try await serving { try await replica.proposeMembership(.removeNode(request.id)) }
            logger.info("replica removed", metadata: ["member.id": "\(request.id)", "by": "\(caller)"])
            return await describe()
        }
    }

    func transferLeadership(request: Specola_V1_TransferLeadershipRequest, context: ServerContext) async throws -> Specola_V1_TransferLeadershipResponse {
        let caller = try await access.check(context, .leadershipTransfer, .cluster, request: request)
        let target = request.toID == 0 ? nil : request.toID
        if await replica.isLeader { await alerts.settle(within: .seconds(3)) }
        defer { alerts.resumeAfterSettling() }
        let leader = try await serving { try await replica.transferLeadership(to: target) }
        // Recorded after the transfer; the new leader commits it (or it stays in this journal).
        access.audit.record(caller, .leadershipTransfer, .cluster, outcome: "allowed", detail: "to \(leader)", request: request)
        return .with { $0.leaderID = leader }
    }

    func saveSnapshot(request: Specola_V1_SaveSnapshotRequest, context: ServerContext) async throws -> Specola_V1_ClusterSnapshot {
        try await access.audited(context, .snapshotSave, .cluster, request: request) { _ in
            try await serving { try await replica.readBarrier() }
            return await replica.snapshotOfState
        }
    }
}
