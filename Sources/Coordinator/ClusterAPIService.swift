import SpecolaClusterCore
import Foundation
import GRPCCore
import Logging
import SpecolaProtocol

/// The API behind the `specola` CLI. Callers need a user or coordinator certificate.
struct ClusterAPIService: Specola_V1_ClusterAPI.SimpleServiceProtocol {
    let replica: Replica
    let coordinatorName: String
    let health: HealthController
    let logger: Logger
    /// Where operators' storage requests go; nil where no storage controller runs.
    var storage: StorageController? = nil

    func status(request: Specola_V1_StatusRequest, context: ServerContext) async throws -> Specola_V1_StatusResponse {
        _ = try CallerIdentity.require(context, roles: [.user, .coordinator])
        let nodes = await replica.allNodes()
        let leader = await replica.leaderHint
        let isLeader = await replica.isLeader
        let term = await replica.term
        let commit = await replica.commitIndex
        let applied = await replica.appliedIndex
        return .with {
            $0.coordinatorName = coordinatorName
            $0.version = SpecolaVersion.current
            $0.role = isLeader ? "leader" : "follower"
            $0.nodesTotal = UInt32(nodes.count)
            $0.nodesReady = UInt32(nodes.filter { $0.status == "ready" }.count)
            $0.nodesSuspect = UInt32(nodes.filter { $0.status == "suspect" }.count)
            $0.nodesDown = UInt32(nodes.filter { $0.status == "down" }.count)
            $0.startedAtUnixMs = replica.startedAtUnixMs
            $0.sensorsCritical = UInt32(nodes.reduce(0) { total, node in
                total + node.facts.bmc.sensors.filter { $0.state == .critical }.count
            })
            $0.raftTerm = term
            $0.commitIndex = commit
            $0.appliedIndex = applied
            $0.leaderName = leader?.name ?? ""
            $0.leaderAddress = leader?.address ?? ""
        }
    }


    func listNodes(request: Specola_V1_ListNodesRequest, context: ServerContext) async throws -> Specola_V1_ListNodesResponse {
        _ = try CallerIdentity.require(context, roles: [.user, .coordinator])
        // Node facts live on the leader (liveness is leader-only soft state), so followers redirect.
        try await serving { try await replica.requireLeader() }
        let counts = await replica.allocationCounts()
        let nodes = await replica.allNodes().map { node in
            var node = node
            node.allocations = UInt32(counts[node.name] ?? 0)
            return node
        }
        return .with { $0.nodes = nodes }
    }

    func getNode(request: Specola_V1_GetNodeRequest, context: ServerContext) async throws -> Specola_V1_Node {
        _ = try CallerIdentity.require(context, roles: [.user, .coordinator])
        // Node facts live on the leader (liveness is leader-only soft state), so followers redirect.
        try await serving { try await replica.requireLeader() }
        guard var node = await replica.node(request.name) else {
            throw RPCError(code: .notFound, message: "no node named '\(request.name)'; `specola nodes` lists the known nodes")
        }
        node.allocations = UInt32(await replica.allocationCounts()[request.name] ?? 0)
        return node
    }

    /// `specola node fence NAME [--force]` starts fencing now (the mass-failure brake applies unless
    /// forced); `unfence` powers a fenced node back on through its configured BMC and lets it rejoin.
    func fence(request: Specola_V1_FenceRequest, context: ServerContext) async throws -> Specola_V1_Node {
        let identity = try CallerIdentity.require(context, roles: [.user, .coordinator])
        try await serving { try await replica.requireLeader() }
        let fence: Bool
        switch request.action {
        case "fence": fence = true
        case "unfence": fence = false
        default: throw RPCError(code: .invalidArgument, message: "unknown action '\(request.action)'; use fence or unfence")
        }
        guard await replica.node(request.name) != nil else {
            throw RPCError(code: .notFound, message: "no node named '\(request.name)'; `specola nodes` lists the known nodes")
        }
        do {
            try await health.operatorRequest(fence: fence, node: request.name, by: "\(identity)", force: request.force)
        } catch {
            throw RPCError(code: .failedPrecondition, message: error.description)
        }
        guard let updated = await replica.node(request.name) else { throw RPCError(code: .notFound, message: "node \(request.name) vanished") }
        return updated
    }

    /// `specola volume show VOL`: the volume's storage actions and why the planner leaves it alone.
    func getVolume(request: Specola_V1_GetVolumeRequest, context: ServerContext) async throws -> Specola_V1_VolumeDetail {
        _ = try CallerIdentity.require(context, roles: [.user, .coordinator])
        try await serving { try await replica.requireLeader() }
        guard let storage else { return .with { $0.name = request.name } }
        return await storage.detail(request.name)
    }

    /// `specola volume heal VOL [--full]`, `specola brick replace VOL OLD NEW [--force]`.
    func requestStorageAction(request: Specola_V1_StorageRequest, context: ServerContext) async throws -> Specola_V1_StorageAction {
        let identity = try CallerIdentity.require(context, roles: [.user, .coordinator])
        try await serving { try await replica.requireLeader() }
        guard let storage else { throw RPCError(code: .unavailable, message: "this coordinator runs no storage controller") }
        do {
            return try await serving { try await storage.operatorRequest(request, by: "\(identity)") }
        } catch let refusal as HealPlanner.Refusal {
            switch refusal.code {
            case .unknownVolume, .unknownBrick: throw RPCError(code: .notFound, message: refusal.description)
            case .refused: throw RPCError(code: .failedPrecondition, message: refusal.description)
            }
        }
    }
}
