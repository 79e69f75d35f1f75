import SpecolaClusterCore
import Foundation
import GRPCCore
import Logging
import SpecolaProtocol

/// Defining, listing, enabling, disabling and deleting HA workloads (VMs and
/// pods). Writes go through Raft; reads are linearizable. Served by the
/// leader so the waiting reason (leader-local) is current; followers redirect.
struct WorkloadsService: Specola_V1_Workloads.SimpleServiceProtocol {
    let replica: Replica
    let controller: WorkloadController
    let policy: WorkloadPolicy
    let logger: Logger
    let access: AccessGate

    private func propose(_ command: Specola_V1_Command) async throws {
        let outcome = try await serving { try await replica.propose(command) }
        if case .rejected(let reason) = outcome {
            throw RPCError(code: .failedPrecondition, message: reason)
        }
        controller.nudge()
    }

    func define(request: Specola_V1_DefineWorkloadRequest, context: ServerContext) async throws -> Specola_V1_Workload {
        try await access.audited(context, .workloadChange, Resource(kind: "workload", name: request.workload.name), request: request) { identity in
            try await define(request, by: identity)
        }
    }

    private func define(_ request: Specola_V1_DefineWorkloadRequest, by identity: Principal) async throws -> Specola_V1_Workload {
        try await serving { try await replica.requireLeader() }
        var workload = request.workload
        guard let kind = WorkloadKind(rawValue: workload.kind) else {
            throw RPCError(code: .invalidArgument, message: "'\(workload.kind)' is not a workload kind; use vm or pod")
        }
        let inspected: WorkloadDefinition
        do {
            inspected = try WorkloadDefinition.inspect(kind: kind, workload.definition, policy: policy)
        } catch {
            throw RPCError(code: .invalidArgument, message: "\(error); nothing was created")
        }
        if workload.name.isEmpty { workload.name = inspected.name }
        guard inspected.name == workload.name else {
            let inside = kind == .vm ? "the domain XML's <name>" : "the Pod's metadata.name"
            throw RPCError(code: .invalidArgument, message:
                "\(inside) is '\(inspected.name)' but the \(kind.rawValue) is to be called '\(workload.name)'; they must match, since that is the name \(kind == .vm ? "libvirt" : "podman") knows it by")
        }
        if let problem = WorkloadBook.nameProblem(workload.name) {
            throw RPCError(code: .invalidArgument, message: problem)
        }
        if workload.cpuMillicores == 0 { workload.cpuMillicores = inspected.cpuMillicores }
        if workload.memoryBytes == 0 { workload.memoryBytes = inspected.memoryBytes }
        if request.defaultLimits {
            workload.maxRestarts = WorkloadBook.defaultMaxRestarts
            workload.maxRelocations = WorkloadBook.defaultMaxRelocations
        }
        if !workload.homeNode.isEmpty, await replica.node(workload.homeNode) == nil {
            throw RPCError(code: .notFound, message: "no node named '\(workload.homeNode)'; `specola nodes` lists the known nodes")
        }
        try await propose(.workload(workload.name, at: WallClock.nowUnixMs(), by: identity.description, .define(workload)))
        logger.info("workload defined", metadata: [
            "workload.name": "\(workload.name)", "workload.kind": "\(kind.rawValue)", "requested.by": "\(identity)",
        ])
        return try await current(workload.name, kind: kind.rawValue)
    }

    func get(request: Specola_V1_GetWorkloadRequest, context: ServerContext) async throws -> Specola_V1_Workload {
        try await access.check(context, .clusterRead, .cluster)
        try await serving { try await replica.readBarrier() }
        return try await current(request.name, kind: request.kind)
    }

    func list(request: Specola_V1_ListWorkloadsRequest, context: ServerContext) async throws -> Specola_V1_ListWorkloadsResponse {
        try await access.check(context, .clusterRead, .cluster)
        try await serving { try await replica.readBarrier() }
        let state = await replica.replicatedState
        return .with {
            $0.workloads = state.workloads.workloads.values
                .filter { request.kind.isEmpty || $0.kind == request.kind }
                .sorted { $0.name < $1.name }
                .map(withWaitingReason)
        }
    }

    func setDesired(request: Specola_V1_SetWorkloadDesiredRequest, context: ServerContext) async throws -> Specola_V1_Workload {
        try await access.audited(context, .workloadChange, Resource(kind: "workload", name: request.name), request: request) { identity in
            try await setDesired(request, by: identity)
        }
    }

    private func setDesired(_ request: Specola_V1_SetWorkloadDesiredRequest, by identity: Principal) async throws -> Specola_V1_Workload {
        guard WorkloadDesired(rawValue: request.desired) != nil else {
            throw RPCError(code: .invalidArgument, message: "'\(request.desired)' is not a desired state; use started, stopped or disabled")
        }
        try await serving { try await replica.readBarrier() }
        _ = try await current(request.name, kind: request.kind)
        try await propose(.workload(request.name, at: WallClock.nowUnixMs(), by: identity.description, .setDesired(request.desired)))
        logger.info("workload desired state changed", metadata: [
            "workload.name": "\(request.name)", "workload.desired": "\(request.desired)", "requested.by": "\(identity)",
        ])
        return try await current(request.name, kind: request.kind)
    }

    func delete(request: Specola_V1_DeleteWorkloadRequest, context: ServerContext) async throws -> Specola_V1_DeleteWorkloadResponse {
        try await access.audited(context, .workloadChange, Resource(kind: "workload", name: request.name), request: request) { identity in
            try await delete(request, by: identity)
        }
    }

    private func delete(_ request: Specola_V1_DeleteWorkloadRequest, by identity: Principal) async throws -> Specola_V1_DeleteWorkloadResponse {
        try await serving { try await replica.readBarrier() }
        _ = try await current(request.name, kind: request.kind)
        try await propose(.workload(request.name, at: WallClock.nowUnixMs(), by: identity.description, .delete(.init())))
        logger.info("workload deleted", metadata: ["workload.name": "\(request.name)", "requested.by": "\(identity)"])
        return .init()
    }

    /// The workload as stored, with the controller's reason when it should run and does not.
    private func current(_ name: String, kind: String) async throws -> Specola_V1_Workload {
        guard let workload = await replica.replicatedState.workloads.workloads[name], kind.isEmpty || workload.kind == kind else {
            let what = kind.isEmpty ? "workload" : kind
            throw RPCError(code: .notFound, message: "no \(what) named '\(name)'; `specola \(kind.isEmpty ? "vm" : kind) list` lists them")
        }
        return withWaitingReason(workload)
    }

    private func withWaitingReason(_ workload: Specola_V1_Workload) -> Specola_V1_Workload {
        var shown = workload
        if let reason = controller.waitingReason(workload.name) {
            shown.message = shown.message.isEmpty ? "waiting: \(reason)" : "\(shown.message); waiting: \(reason)"
        }
        return shown
    }
}
