import SpecolaClusterCore
import Foundation
import GRPCCore
import Logging
import SpecolaJobs
import SpecolaProtocol

/// The API behind the `specola` CLI. Callers need a user or coordinator certificate.
struct ClusterAPIService: Specola_V1_ClusterAPI.SimpleServiceProtocol {
    let replica: Replica
    let coordinatorName: String
    let health: HealthController
    let logger: Logger
    /// Where operators' storage requests go; nil where no storage controller runs.
    var storage: StorageController? = nil
    let access: AccessGate

    func status(request: Specola_V1_StatusRequest, context: ServerContext) async throws -> Specola_V1_StatusResponse {
        try await access.check(context, .clusterRead, .cluster)
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
            $0.nodesReady = UInt32(nodes.filter { $0.shown == .ready }.count)
            $0.nodesSuspect = UInt32(nodes.filter { $0.shown == .suspect }.count)
            $0.nodesDown = UInt32(nodes.filter { $0.shown == .down }.count)
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
        try await access.check(context, .clusterRead, .cluster)
        // Node facts live on the leader (liveness is leader-only soft state), so followers redirect.
        try await serving { try await replica.requireLeader() }
        let counts = await replica.allocationCounts()
        let nodes = await replica.allNodes().map { node in
            var node = node
            node.allocations = UInt32(counts[node.name] ?? 0)
            return node
        }
        let pending = await replica.pendingNodes()
        return .with {
            $0.nodes = nodes
            $0.pending = pending
        }
    }

    func getNode(request: Specola_V1_GetNodeRequest, context: ServerContext) async throws -> Specola_V1_Node {
        try await access.check(context, .clusterRead, .cluster)
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
        try await access.audited(context, .nodeFence, .node(request.name), request: request) { identity in
            try await fence(request, by: identity)
        }
    }

    private func fence(_ request: Specola_V1_FenceRequest, by identity: Principal) async throws -> Specola_V1_Node {
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
        try await access.check(context, .clusterRead, .cluster)
        try await serving { try await replica.requireLeader() }
        guard let storage else { return .with { $0.name = request.name } }
        return await storage.detail(request.name)
    }

    /// `specola volume heal VOL [--full]`, `specola brick replace VOL OLD NEW [--force]`.
    func requestStorageAction(request: Specola_V1_StorageRequest, context: ServerContext) async throws -> Specola_V1_StorageAction {
        try await access.audited(context, .storageRepair, Resource(kind: "volume", name: request.volume), request: request) { identity in
            try await requestStorageAction(request, by: identity)
        }
    }

    private func requestStorageAction(_ request: Specola_V1_StorageRequest, by identity: Principal) async throws -> Specola_V1_StorageAction {
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

    /// `specola node accept NAME [--label k=v]`: a registered agent's node joins, with the operator's labels.
    func acceptNode(request: Specola_V1_AcceptNodeRequest, context: ServerContext) async throws -> Specola_V1_Node {
        try await access.audited(context, .nodeAdmit, .node(request.name), request: request) { identity in
        try await changeNode(request.name, .acceptNode(name: request.name, labels: request.labels, by: "\(identity)"),
                                    refusedAs: .failedPrecondition, logging: "node accepted", by: identity)
        }
    }

    /// `specola node label NAME k=v k-`: from then on the node's labels are the operator's alone.
    func labelNode(request: Specola_V1_LabelNodeRequest, context: ServerContext) async throws -> Specola_V1_Node {
        try await access.audited(context, .nodeAdmit, .node(request.name), request: request) { identity in
        for key in Array(request.set.keys) + request.remove where key.isEmpty || key.utf8.count > 63 {
            throw RPCError(code: .invalidArgument, message: "label key '\(key)' must be 1 to 63 bytes")
        }
        return try await changeNode(request.name, .nodeLabels(name: request.name, set: request.set, remove: request.remove),
                                    refusedAs: .notFound, logging: "node labels changed", by: identity)
        }
    }

    /// Commits an operator's change to one node on the leader and returns the node as it is now.
    private func changeNode(_ name: String, _ command: Specola_V1_Command, refusedAs code: RPCError.Code,
                            logging event: Logger.Message, by identity: Principal) async throws -> Specola_V1_Node {
        try await serving { try await replica.requireLeader() }
        let outcome = try await serving { try await replica.propose(command) }
        if case .rejected(let reason) = outcome { throw RPCError(code: code, message: reason) }
        logger.notice(event, metadata: ["node.name": "\(name)", "changed.by": "\(identity)"])
        guard let node = await replica.node(name) else { throw RPCError(code: .notFound, message: "node \(name) vanished") }
        return node
    }

    /// `specola pki revoke SERIAL|ROLE/NAME`: every replica refuses the certificate from the moment it applies this.
    func revoke(request: Specola_V1_RevokeRequest, context: ServerContext) async throws -> Specola_V1_RevokeResponse {
        try await access.audited(context, .pkiRevoke, Resource(kind: "certificate", name: request.target), request: request) { identity in
            try await revoke(request, by: identity)
        }
    }

    private func revoke(_ request: Specola_V1_RevokeRequest, by identity: Principal) async throws -> Specola_V1_RevokeResponse {
        try await serving { try await replica.requireLeader() }
        let target = try RevocationTarget(parsing: request.target)
        if case .identity(let revoked) = target, revoked.description == identity.description {
            throw RPCError(code: .invalidArgument, message: "\(identity) may not revoke its own identity; use another operator's certificate")
        }
        _ = try await serving {
            try await replica.propose(.revokeCertificate(
                serial: target.serial, identity: target.identity, reason: request.reason, by: "\(identity)"))
        }
        logger.notice("certificate revoked", metadata: [
            "revoked.serial": "\(target.serial)", "revoked.identity": "\(target.identity)", "revoked.by": "\(identity)",
        ])
        let revoked = await replica.revokedCertificates
        return .with { $0.revoked = revoked }
    }
}

/// What `specola pki revoke` names: one certificate by serial, or every certificate of an identity.
enum RevocationTarget {
    case serial(String)
    case identity(Identity)

    init(parsing text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let slash = trimmed.firstIndex(of: "/") {
            guard let role = CertificateRole(rawValue: String(trimmed[..<slash])) else {
                throw RPCError(code: .invalidArgument, message: "'\(text)' names no role; give ROLE/NAME with ROLE one of \(CertificateRole.allCases.map(\.rawValue).joined(separator: ", ")), or a certificate serial")
            }
            let name = String(trimmed[trimmed.index(after: slash)...])
            do {
                try PKI.validate(name: name)
            } catch {
                throw RPCError(code: .invalidArgument, message: error.description)
            }
            self = .identity(Identity(role: role, name: name))
            return
        }
        let hex = trimmed.lowercased().filter { $0 != ":" }
        guard !hex.isEmpty, hex.count <= 40, hex.allSatisfy(\.isHexDigit) else {
            throw RPCError(code: .invalidArgument, message: "'\(text)' is neither a certificate serial (hex, e.g. from `openssl x509 -noout -serial`) nor ROLE/NAME (e.g. node/node1)")
        }
        self = .serial(DenyList.normalized(serial: hex))
    }

    var serial: String {
        if case .serial(let serial) = self { return serial }
        return ""
    }

    var identity: String {
        if case .identity(let identity) = self { return identity.description }
        return ""
    }
}
