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

    /// A coordinator and one agent with projects astro (member bob, one task at a time) and radio
    /// (member carol), viewer vera and operator otto; cleaned up after `body`.
    func withTwoProjects(removingContainersOf jobs: [String],
                         _ body: (LocalCluster, _ vera: TLSFiles, _ bob: TLSFiles, _ carol: TLSFiles, _ otto: TLSFiles) async throws -> Void) async throws {
        let cluster = try await JobTests.startCluster(agents: [("node1", "127.0.1.3", "r1")])
        try await cluster.withCleanup(removingContainersOf: jobs) {
            let people = try ["vera", "bob", "carol", "otto"].map { try cluster.pki.issue(.user, $0) }
            try ok(await cluster.cli(["project", "create", "astro", "--member", "bob", "--max-tasks", "1"]))
            try ok(await cluster.cli(["project", "create", "radio", "--member", "carol"]))
            try ok(await cluster.cli(["access", "grant", "vera", "viewer"]))
            try ok(await cluster.cli(["access", "grant", "user/otto", "operator"]))
            try await body(cluster, people[0], people[1], people[2], people[3])
        }
    }

    func auditRecords(_ cluster: LocalCluster) async throws -> [Specola_V1_AuditRecord] {
        let audit = try await cluster.cli(["audit", "--json"])
        try ok(audit)
        var options = JSONDecodingOptions()
        options.ignoreUnknownFields = true
        return try audit.stdout.split(separator: "\n").map { try Specola_V1_AuditRecord(jsonString: String($0), options: options) }
    }

    @Test func eachRoleIsRefusedWhatItMayNotDoAndTheAuditLogSaysSo() async throws {
        try await withTwoProjects(removingContainersOf: ["survey-a"]) { cluster, vera, bob, carol, otto in

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
                          "user/vera may not job.submit on job/astro/survey-v: it needs admin or member of astro; user/vera holds viewer")

            // A member submits into its project; the owner is who signed in, not the spec's text.
            try ok(await cluster.cli(as: bob, ["job", "run", "--detach", try job("survey-a", project: "astro")]))
            let submitted = try await JobTests.status(cluster, "survey-a")
            #expect(submitted.owner == "bob" && submitted.project == "astro" && submitted.submittedBy == "user/bob")
            expectRefused(try await cluster.cli(as: bob, ["job", "run", "--detach", try job("survey-r", project: "radio")]),
                          "user/bob may not job.submit on job/radio/survey-r: it needs admin or member of radio; user/bob holds member of astro")

            // Over the project's quota of one task at a time, the second instance waits and says why.
            try await waitUntil("one task of survey-a to wait on astro's quota", timeout: .seconds(60), every: .milliseconds(300)) {
                try await JobTests.status(cluster, "survey-a").tasks.contains { $0.waitingReason.contains("waits on project astro's quota of 1 concurrent tasks") }
            }

            // A member of another project may not touch this one's job.
            expectRefused(try await cluster.cli(as: carol, ["job", "cancel", "survey-a"]),
                          "user/carol may not job.cancel on job/astro/survey-a: it needs admin or member of astro; user/carol holds member of radio")

            // exec and host mounts are the admin's unless the project allows them.
            expectRefused(try await cluster.cli(as: bob, ["job", "run", "--detach", try job("exec-a", project: "astro", task: "driver: exec\n  command: /bin/true")]),
                          "user/bob may not job.exec on job/astro/exec-a: task 'run' uses the exec driver, which project astro does not allow")
            let mount = "driver: podman\n  image: IMAGE\n  mounts: [{source: /etc, target: /host-etc}]"
            expectRefused(try await cluster.cli(as: bob, ["job", "run", "--detach", try job("mount-a", project: "astro", task: mount)]),
                          "user/bob may not job.mount on job/astro/mount-a: task 'run' mounts /etc, outside project astro's archive mounts (none)")

            // An operator may cordon but not change who belongs to a project.
            expectRefused(try await cluster.cli(as: otto, ["project", "add-member", "astro", "otto"]),
                          "user/otto may not access.change on project/astro: it needs admin; user/otto holds operator")
            // Only admins read the audit log.
            expectRefused(try await cluster.cli(as: otto, ["audit"]), "user/otto may not audit.read on cluster/*: it needs admin; user/otto holds operator")

            let records = try await auditRecords(cluster)
            func logged(_ who: String, _ verb: String, _ outcome: String, _ resource: String) -> Bool {
                records.contains { $0.principal == who && $0.verb == verb && $0.outcome == outcome && $0.resource == resource && $0.atUnixMs > 0 }
            }
            #expect(logged("user/vera", "job.submit", "refused", "job/astro/survey-v"), "\(records)")
            #expect(logged("user/bob", "job.submit", "allowed", "job/astro/survey-a"))
            #expect(logged("user/bob", "job.submit", "refused", "job/radio/survey-r"))
            #expect(logged("user/carol", "job.cancel", "refused", "job/astro/survey-a"))
            #expect(logged("user/bob", "job.exec", "refused", "job/astro/exec-a"))
            #expect(logged("user/bob", "job.mount", "refused", "job/astro/mount-a"))
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

    /// Job ids are scoped per project: members of two projects each run a job called `reduce`, each
    /// sees and cancels only its own; a member reading the other's job is refused and audited; a
    /// viewer sees both. The audit log names PROJECT/NAME.
    @Test func twoProjectsEachRunReduceAndSeeOnlyTheirOwn() async throws {
        try await withTwoProjects(removingContainersOf: ["reduce"]) { cluster, vera, bob, carol, _ in
            for project in ["astro", "radio"] {
                let file = try JobTests.spec(cluster, "reduce-\(project).yaml", """
                    apiVersion: specola/v1
                    kind: Job
                    metadata: {name: reduce, owner: x, project: \(project)}
                    task:
                      name: run
                      driver: podman
                      image: IMAGE
                      command: /bin/sleep
                      args: ["30"]
                      resources: {cpu: 0.1, memory: 32MiB}
                    """)
                let submitted = try await cluster.cli(as: project == "astro" ? bob : carol, ["job", "run", "--detach", file])
                try ok(submitted)
                #expect(submitted.stdout.contains("submitted job \(project)/reduce"), "\(submitted.stdout)")
            }
            // Each member lists only its project's job; the viewer lists both.
            let bobs = try await cluster.cli(as: bob, ["jobs"])
            #expect(bobs.stdout.contains("astro/reduce") && !bobs.stdout.contains("radio/reduce"), "\(bobs.stdout)")
            let veras = try await cluster.cli(as: vera, ["jobs"])
            #expect(veras.stdout.contains("astro/reduce") && veras.stdout.contains("radio/reduce"), "\(veras.stdout)")
            // A bare name is the caller's own project's job; the admin (member of neither) must say which.
            let carolsStatus = try await cluster.cli(as: carol, ["job", "status", "reduce"])
            #expect(carolsStatus.stdout.contains("radio/reduce") && carolsStatus.stdout.contains("project radio"), "\(carolsStatus.stdout)")
            let ambiguous = try await cluster.cli(["job", "status", "reduce"])
            #expect(ambiguous.status != 0 && ambiguous.stderr.contains("job name 'reduce' is used in projects astro, radio"), "\(ambiguous.stderr)")
            try ok(await cluster.cli(["job", "status", "--project", "astro", "reduce"]))

            // Reading or cancelling the other project's job is refused (and audited).
            expectRefused(try await cluster.cli(as: carol, ["job", "status", "astro/reduce"]),
                          "user/carol may not job.read on job/astro/reduce: it needs viewer, operator, admin or member of astro; user/carol holds member of radio")
            expectRefused(try await cluster.cli(as: carol, ["job", "cancel", "--project", "astro", "reduce"]),
                          "user/carol may not job.cancel on job/astro/reduce: it needs admin or member of astro")
            // Each cancels its own; the other's keeps running.
            try ok(await cluster.cli(as: carol, ["job", "cancel", "reduce"]))
            #expect(try await JobTests.status(cluster, "radio/reduce").state == "cancelled")
            #expect(try await JobTests.status(cluster, "astro/reduce").state != "cancelled")
            try ok(await cluster.cli(as: bob, ["job", "cancel", "reduce"]))
            #expect(try await JobTests.status(cluster, "astro/reduce").state == "cancelled")

            let records = try await auditRecords(cluster)
            func logged(_ who: String, _ verb: String, _ outcome: String, _ resource: String) -> Bool {
                records.contains { $0.principal == who && $0.verb == verb && $0.outcome == outcome && $0.resource == resource }
            }
            #expect(logged("user/bob", "job.submit", "allowed", "job/astro/reduce"), "\(records)")
            #expect(logged("user/carol", "job.submit", "allowed", "job/radio/reduce"))
            #expect(logged("user/carol", "job.read", "refused", "job/astro/reduce"))
            #expect(logged("user/carol", "job.cancel", "refused", "job/astro/reduce"))
            #expect(logged("user/carol", "job.cancel", "allowed", "job/radio/reduce"))
            #expect(logged("user/bob", "job.cancel", "allowed", "job/astro/reduce"))
        }
    }

    /// A project's step outputs (KV keys under `jobs/PROJECT/`) are its own: a member of another
    /// project is refused on every KV route (get, ls, put, del, cas) and each refusal is audited; a
    /// wider listing leaves them out; the owning member reads and writes them, a viewer reads them.
    @Test func stepOutputsAreReadAndWrittenOnlyWithinTheirProject() async throws {
        try await withTwoProjects(removingContainersOf: ["calib"]) { cluster, vera, bob, carol, _ in
            let file = try JobTests.spec(cluster, "calib.yaml", """
                apiVersion: specola/v1
                kind: Pipeline
                metadata: {name: calib, owner: x, project: astro}
                steps:
                  - name: prepare
                    driver: podman
                    image: IMAGE
                    command: /bin/sh
                    args: ["-c", "echo specola-output: bias=bias-astro.fits"]
                    outputs: [bias]
                    resources: {cpu: 0.1, memory: 32MiB}
                """)
            try ok(await cluster.cli(as: bob, ["job", "run", file]))
            let key = "jobs/astro/calib/outputs/prepare/prepare/bias"
            let prefix = "jobs/astro/calib/outputs/"

            // The project's member reads its step output and may correct it; a viewer reads it.
            let read = try await cluster.cli(as: bob, ["kv", "get", key])
            try ok(read)
            #expect(read.stdout == "bias-astro.fits\n", "\(read.stdout)")
            try ok(await cluster.cli(as: bob, ["kv", "put", key, "bias-astro-v2.fits"]))
            #expect(try await cluster.cli(as: vera, ["kv", "get", key]).stdout == "bias-astro-v2.fits\n")

            // A member of another project: refused on every route, naming the project that owns the key.
            let holds = "user/carol holds member of radio"
            let onKey = "on kv/\(key) (project astro)"
            expectRefused(try await cluster.cli(as: carol, ["kv", "get", key]),
                          "user/carol may not kv.read \(onKey): it needs viewer, operator, admin or member of astro; \(holds)")
            expectRefused(try await cluster.cli(as: carol, ["kv", "ls", prefix]),
                          "user/carol may not kv.read on kv/\(prefix) (project astro): it needs viewer, operator, admin or member of astro; \(holds)")
            let writeRefusal = "user/carol may not kv.write \(onKey): it needs operator, admin or member of astro; \(holds)"
            expectRefused(try await cluster.cli(as: carol, ["kv", "put", key, "forged.fits"]), writeRefusal)
            expectRefused(try await cluster.cli(as: carol, ["kv", "del", key]), writeRefusal)
            expectRefused(try await cluster.cli(as: carol, ["kv", "cas", "--expect", "bias-astro-v2.fits", key, "forged.fits"]), writeRefusal)
            // A listing wider than one project is allowed but leaves astro's outputs out.
            let carolsList = try await cluster.cli(as: carol, ["kv", "ls", "jobs/"])
            try ok(carolsList)
            #expect(!carolsList.stdout.contains("jobs/astro/"), "\(carolsList.stdout)")
            #expect(try await cluster.cli(as: bob, ["kv", "ls", "jobs/"]).stdout.contains(key))
            #expect(try await cluster.cli(as: vera, ["kv", "get", key]).stdout == "bias-astro-v2.fits\n", "nothing carol sent changed it")

            let records = try await auditRecords(cluster)
            func logged(_ who: String, _ verb: String, _ outcome: String, _ resource: String) -> Bool {
                records.contains { $0.principal == who && $0.verb == verb && $0.outcome == outcome && $0.resource == resource }
            }
            let resource = "kv/\(key) (project astro)"
            #expect(logged("user/bob", "kv.write", "allowed", resource), "\(records)")
            #expect(logged("user/carol", "kv.read", "refused", resource))
            #expect(logged("user/carol", "kv.read", "refused", "kv/\(prefix) (project astro)"))
            #expect(records.filter { $0.principal == "user/carol" && $0.verb == "kv.write" && $0.outcome == "refused" && $0.resource == resource }.count == 3,
                    "put, del and cas each refused and audited")
        }
    }
}
