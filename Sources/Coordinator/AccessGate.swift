import GRPCCore
import Logging
import SpecolaClusterCore
import SpecolaProtocol
import SwiftProtobuf

/// Where every RPC asks the one authorization decision (`AccessPolicy.authorize`) and where
/// refusals and mutating calls are handed to the audit recorder.
struct AccessGate: Sendable {
    let policy: AccessPolicy
    let replica: Replica
    let audit: AuditRecorder

    /// The caller, if `verb` on `resource` is allowed; else a permissionDenied naming who, what,
    /// which resource and which role would allow it (and the refusal is audited).
    @discardableResult
    func check(_ context: ServerContext, _ verb: Verb, _ resource: Resource,
               request: (any SwiftProtobuf.Message)? = nil) async throws -> Principal {
        let principal = try CallerIdentity.principal(context)
        try await check(principal, verb, resource, request: request)
        return principal
    }

    func check(_ principal: Principal, _ verb: Verb, _ resource: Resource, request: (any SwiftProtobuf.Message)? = nil) async throws {
        // Machine parties never depend on replicated bindings.
        let book = principal.kind == .user && policy.enforced ? replica.accessView.current : AccessBook()
        if case .deny(let message) = policy.authorize(principal, verb, resource, in: book) {
            throw refused(principal, verb, resource, message, request: request)
        }
    }

    /// Audits a refusal (also one decided elsewhere, e.g. a job outside its project's limits); throw the result.
    func refused(_ principal: Principal, _ verb: Verb, _ resource: Resource, _ message: String,
                 request: (any SwiftProtobuf.Message)?) -> RPCError {
        audit.record(principal, verb, resource, outcome: "refused", detail: message, request: request)
        return RPCError(code: .permissionDenied, message: message)
    }

    func roles(of principal: Principal) async -> Set<AccessRole> {
        policy.roles(of: principal, in: replica.accessView.current)
    }

    /// The projects whose jobs `principal` sees in listings; nil: every project.
    func readableProjects(of principal: Principal) -> Set<String>? {
        policy.readableProjects(of: principal, in: replica.accessView.current)
    }

    /// Checks, runs `body`, and audits the call: allowed if it returned, failed if it threw.
    func audited<T: Sendable>(_ context: ServerContext, _ verb: Verb, _ resource: Resource, request: (any SwiftProtobuf.Message)?,
                              _ body: (Principal) async throws -> T) async throws -> T {
        let principal = try await check(context, verb, resource, request: request)
        return try await audited(principal, verb, resource, request: request, body)
    }

    /// Runs `body` for a caller already checked, and audits the call.
    func audited<T: Sendable>(_ principal: Principal, _ verb: Verb, _ resource: Resource, request: (any SwiftProtobuf.Message)?,
                              _ body: (Principal) async throws -> T) async throws -> T {
        do {
            let result = try await body(principal)
            audit.record(principal, verb, resource, outcome: "allowed", detail: "", request: request)
            return result
        } catch let error as RPCError where error.code == .permissionDenied {
            throw error
        } catch {
            audit.record(principal, verb, resource, outcome: "failed", detail: "\(error)", request: request)
            throw error
        }
    }
}
