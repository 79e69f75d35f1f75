import Foundation
import GRPCCore
import Logging
import SpecolaProtocol
import TestSupport
import Testing
@testable import SpecolaClusterCore
@testable import SpecolaCoordinator
import CooperativePoolWatch

/// The gate every RPC passes: it decides from the replica's applied projects and bindings, and
/// its audit records reach the replicated log in batches, refusals rate-limited.
@Suite(.watchesCooperativePool) struct AccessGateTests {
    /// An audit record names the request by the lower-case hex SHA-256 of its bytes (checked against Python's hashlib).
    @Test func theRequestHashIsTheHexSHA256OfItsBytes() {
        let request = Specola_V1_KvPutRequest.with { $0.key = "k"; $0.value = Data("v".utf8) }
        #expect(AuditRecorder.hash(request) == "9142c196566718047b5dc13612b8be144b2dad65bcc2f0b46a999813227c2652")
        #expect(AuditRecorder.hash(nil) == "")
    }

    @Test func refusalsAndAllowedCallsAreCommittedAndAFloodIsFolded() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let replica = try ReplicaTests().makeReplica(dir)
        let ticker = Task { await replica.runTicker() }
        defer { ticker.cancel() }
        try await waitUntil("a single voter to lead") { await replica.isLeader }
        let audit = AuditRecorder(settings: .init(refusalBurst: 2), logger: Logger(label: "test"))
        let gate = AccessGate(policy: AccessPolicy(bootstrapAdmins: ["root"]), replica: replica, audit: audit)
        let root = Principal(kind: .user, name: "root")
        let eve = Principal(kind: .user, name: "eve")

        // A project created through the log is what the gate decides from at once.
        _ = try await replica.propose(.project("astro", at: 1, .create(.with { $0.members = ["bob"] })))
        try await gate.check(Principal(kind: .user, name: "bob"), .jobSubmit, .job("j", project: "astro"))

        for _ in 0..<10 {
            do {
                try await gate.check(eve, .jobSubmit, .job("astro/j", project: "astro"))
                Issue.record("eve holds no role and must be refused")
            } catch let error as RPCError {
                #expect(error.code == .permissionDenied)
                #expect(error.message.hasPrefix("user/eve may not job.submit on job/astro/j: it needs admin or member of astro"))
            }
        }
        let created = try await gate.audited(root, .accessChange, .project("radio"), request: Specola_V1_Project.with { $0.name = "radio" }) { _ in
            try await replica.propose(.project("radio", at: 2, .create(.init())))
        }
        #expect(created == .done)
        await audit.flush(replica: replica, all: true)
        try await replica.readBarrier()
        let records = await replica.accessBook.audit
        let refusals = records.filter { $0.principal == "user/eve" && $0.outcome == "refused" }
        #expect(refusals.count == 3, "two within the burst, then one folded record: \(refusals)")
        #expect(refusals.last?.repeats == 8)
        let allowed = records.filter { $0.principal == "user/root" && $0.outcome == "allowed" && $0.verb == "access.change" }
        #expect(allowed.count == 1)
        #expect(allowed.first?.requestHash.count == 64)
        #expect(await replica.accessBook.projects["radio"] != nil)
    }
}
