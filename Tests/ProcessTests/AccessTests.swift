import Foundation
import SpecolaProtocol
import SwiftProtobuf
import TestSupport
import Testing
import CooperativePoolWatch

/// Roles, projects and the audit log against a real coordinator and agent, through the real CLI:
/// each refusal names who, the verb, the resource and the role that would allow it, and is in
/// the audit log.
@Suite(.serialized, .processTest, .watchesCooperativePool) struct AccessTests {
    func expectRefused(_ result: (status: Int32, stdout: String, stderr: String), _ message: String,
                       sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(result.status == 5, "permissionDenied exits 5: \(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stderr.contains(message), "expected '\(message)' in: \(result.stderr)", sourceLocation: sourceLocation)
    }

    func ok(_ result: (status: Int32, stdout: String, stderr: String), sourceLocation: SourceLocation = #_sourceLocation) throws {
        guard result.status == 0 else { throw CLIFailed(result: result) }
    }

    @Test func eachRoleIsRefusedWhatItMayNotDoAndTheAuditLogSaysSo() async throws {
        let cluster = try await JobTests.startCluster(agents: [("node1", "127.0.1.3", "r1")])
        try await cluster.withCleanup(removingContainersOf: ["survey-a"]) {
            let vera = try cluster.pki.issue(.user, "vera")
            let bob = try cluster.pki.issue(.user, "bob")
            let carol = try cluster.pki.issue(.user, "carol")
            let otto = try cluster.pki.issue(.user, "otto")
            try ok(await cluster.cli(["project", "create", "astro", "--member", "bob", "--max-tasks", "1"]))
            try ok(await cluster.cli(["project", "create", "radio", "--member", "carol"]))
            try ok(await cluster.cli(["access", "grant", "vera", "viewer"]))
            try ok(await cluster.cli(["access", "grant", "user/otto", "operator"]))

            func job(_ name: String, project: String, task: String = "") throws -> String {
                try JobTests.spec(cluster, "\(name).yaml", """
                    apiVersion: specola/v1
                    kind: Job
                    metadata: {name: \(name), owner: somebody-else, project: \(project)}
                    task:
                      name: run
                      \(task.isEmpty ? "driver: podman\n  image: IMAGE\n  command: /bin/sleep\n  args: [\"30\"]" : task)
                      resources: {cpu: 0.1, memory: 32MiB}
                      count: 2
                    """)
            }

            // A viewer reads but does not submit.
            try ok(await cluster.cli(as: vera, ["jobs"]))
            expectRefused(try await cluster.cli(as: vera, ["job", "run", "--detach", try job("survey-v", project: "astro")]),
                          "user/vera may not job.submit on job/survey-v (project astro): it needs admin or member of astro; user/vera holds viewer")

            // A member submits into its project; the owner is who signed in, not the spec's text.
            try ok(await cluster.cli(as: bob, ["job", "run", "--detach", try job("survey-a", project: "astro")]))
            let submitted = try await JobTests.status(cluster, "survey-a")
            #expect(submitted.owner == "bob" && submitted.project == "astro" && submitted.submittedBy == "user/bob")
            expectRefused(try await cluster.cli(as: bob, ["job", "run", "--detach", try job("survey-r", project: "radio")]),
                          "user/bob may not job.submit on job/survey-r (project radio): it needs admin or member of radio; user/bob holds member of astro")

            // Over the project's quota of one task at a time, the second instance waits and says why.
            try await waitUntil("one task of survey-a to wait on astro's quota", timeout: .seconds(60), every: .milliseconds(300)) {
                try await JobTests.status(cluster, "survey-a").tasks.contains { $0.waitingReason.contains("waits on project astro's quota of 1 concurrent tasks") }
            }

            // A member of another project may not touch this one's job.
            expectRefused(try await cluster.cli(as: carol, ["job", "cancel", "survey-a"]),
                          "user/carol may not job.cancel on job/survey-a (project astro): it needs admin or member of astro; user/carol holds member of radio")

            // exec and host mounts are the admin's unless the project allows them.
            expectRefused(try await cluster.cli(as: bob, ["job", "run", "--detach", try job("exec-a", project: "astro", task: "driver: exec\n  command: /bin/true")]),
                          "user/bob may not job.exec on job/exec-a (project astro): task 'run' uses the exec driver, which project astro does not allow")
            let mount = "driver: podman\n  image: IMAGE\n  mounts: [{source: /etc, target: /host-etc}]"
            expectRefused(try await cluster.cli(as: bob, ["job", "run", "--detach", try job("mount-a", project: "astro", task: mount)]),
                          "user/bob may not job.mount on job/mount-a (project astro): task 'run' mounts /etc, outside project astro's archive mounts (none)")

            // An operator may cordon but not change who belongs to a project.
            expectRefused(try await cluster.cli(as: otto, ["project", "add-member", "astro", "otto"]),
                          "user/otto may not access.change on project/astro: it needs admin; user/otto holds operator")
            // Only admins read the audit log.
            expectRefused(try await cluster.cli(as: otto, ["audit"]), "user/otto may not audit.read on cluster/*: it needs admin; user/otto holds operator")

            let audit = try await cluster.cli(["audit", "--json"])
            try ok(audit)
            var options = JSONDecodingOptions()
            options.ignoreUnknownFields = true
            let records = try audit.stdout.split(separator: "\n").map { try Specola_V1_AuditRecord(jsonString: String($0), options: options) }
            func logged(_ who: String, _ verb: String, _ outcome: String, _ resource: String) -> Bool {
                records.contains { $0.principal == who && $0.verb == verb && $0.outcome == outcome && $0.resource == resource && $0.atUnixMs > 0 }
            }
            #expect(logged("user/vera", "job.submit", "refused", "job/survey-v (project astro)"), "\(records)")
            #expect(logged("user/bob", "job.submit", "allowed", "job/survey-a (project astro)"))
            #expect(logged("user/bob", "job.submit", "refused", "job/survey-r (project radio)"))
            #expect(logged("user/carol", "job.cancel", "refused", "job/survey-a (project astro)"))
            #expect(logged("user/bob", "job.exec", "refused", "job/exec-a (project astro)"))
            #expect(logged("user/bob", "job.mount", "refused", "job/mount-a (project astro)"))
            #expect(logged("user/otto", "access.change", "refused", "project/astro"))
            #expect(logged("user/otto", "audit.read", "refused", "cluster/*"))
            #expect(logged("user/admin", "access.change", "allowed", "project/astro"))
            #expect(records.allSatisfy { $0.requestHash.count == 64 || $0.verb == "audit.read" })
            // And each one is in the coordinator's journal as a JSON line.
            #expect(cluster.coordinatorProcess?.log.contains("audit {\"atUnixMs\"") == true)
            let table = try await cluster.cli(["audit", "--user", "bob", "--verb", "job"])
            #expect(table.stdout.contains("job.mount") && !table.stdout.contains("user/otto"), "\(table.stdout)")
        }
    }
}
