import Foundation
import SpecolaProtocol
import SwiftProtobuf
import TestSupport
import Testing
import CooperativePoolWatch
#if canImport(Glibc)
import Glibc
import SpecolaProcesses
#endif

/// The README's run command: `specola dev` brings up a working cluster and
/// Ctrl-C (SIGINT) takes every process it started down again.
@Suite(.serialized, .processTest, .watchesCooperativePool) struct DevCommandTests {
    /// PIDs of processes whose command line mentions `marker`.
    static func processes(mentioning marker: String) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> Int32? in
            guard let pid = Int32(entry), pid != getpid(),
                let raw = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline")
            else { return nil }
            let stat = (try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8)) ?? ""
            if stat.split(separator: ")").last?.split(separator: " ").first == "Z" { return nil }
            return String(decoding: raw, as: UTF8.self).contains(marker) ? pid : nil
        }
    }

    @Test func devStartsAClusterThatReportsAndStopsCleanly() async throws {
        let dir = try TempDir("specola-dev")
        defer { dir.remove() }
        // `specola dev` and its agents use the tests' podman store, not the host's.
        try await TestPodman.ensureImage()
        let dev = try ChildProcess(
            name: "dev", executable: BuiltProducts.path("specola"),
            arguments: ["dev", "--dir", dir.file("cluster"), "--agents", "2"], logDirectory: dir.path,
            environment: ["CONTAINERS_STORAGE_CONF": TestPodman.environment["CONTAINERS_STORAGE_CONF"]!])
        do {
            try await waitUntil("specola dev to report every agent", timeout: .seconds(90)) {
                guard dev.isRunning else { throw ProcessDied(log: dev.log) }
                return dev.log.contains("all 2 agents reported")
            }
            var env: [String: String] = [:]
            for line in dev.log.split(separator: "\n") where line.hasPrefix("export ") {
                let pair = line.dropFirst("export ".count).split(separator: "=", maxSplits: 1)
                env[String(pair[0])] = String(pair[1])
            }
            #expect(env["SPECOLA_ADDR"] != nil)
            let listed = try await run(BuiltProducts.path("specola"), ["nodes", "--json"], environment: env)
            #expect(listed.status == 0, "\(listed.stderr)")
            let nodes = try Specola_V1_ListNodesResponse(jsonString: listed.stdout).nodes
            #expect(nodes.map(\.name).sorted() == ["node1", "node2"])
            for node in nodes {
                #expect(node.facts.storage.disks.count > 0)
                #expect(node.facts.vms.available && !node.facts.vms.vms.isEmpty)
                #expect(node.facts.containers.available || !node.facts.containers.reason.isEmpty)
                if SimulatedBMC.isInstalled {
                    #expect(node.facts.bmc.present, "\(node.name): \(node.facts.bmc.reason)")
                    #expect(node.facts.bmc.sensors.contains { $0.name == "CPU Temp" })
                }
            }
            // Storage: a replica-2 GlusterFS volume, one brick per agent, each seen by its own agent.
            #expect(dev.log.contains("# storage: GlusterFS volume devgv, replica 2"), "\(dev.log)")
            let volume = try await waitUntilValue("devgv's two bricks online, one on each agent", timeout: .seconds(30)) {
                let result = try await run(BuiltProducts.path("specola"), ["volumes", "--json"], environment: env)
                guard result.status == 0 else { return nil as Specola_V1_GlusterVolumeView? }
                let view = try Specola_V1_GlusterVolumeList(jsonString: result.stdout).volumes.first { $0.volume.name == "devgv" }
                return view.flatMap { view in
                    view.bricks.map(\.node) == ["node1", "node2"] && view.bricks.allSatisfy { $0.brick.online && $0.brick.pid > 0 } ? view : nil
                }
            }
            #expect(volume.bricks.allSatisfy { $0.brick.path.hasPrefix(dir.file("cluster/gluster/")) }, "\(volume.bricks)")
            let shown = try await run(BuiltProducts.path("specola"), ["volume", "show", "devgv"], environment: env)
            #expect(shown.status == 0 && shown.stdout.contains("node1") && shown.stdout.contains("node2"), "\(shown)")

            let members = try await run(BuiltProducts.path("specola"), ["members"], environment: env)
            #expect(members.stdout.components(separatedBy: "voter").count - 1 == 3)
            #expect(members.stdout.components(separatedBy: ":7451").count - 1 == 3, "each replica's direct Raft channel is listed: \(members.stdout)")

            // The KV store through the CLI, also via another replica's address: the CLI follows the leader.
            let specola = BuiltProducts.path("specola")
            var viaOtherReplica = env
            viaOtherReplica["SPECOLA_ADDR"] = "127.0.0.13:7450"
            #expect(try await run(specola, ["kv", "put", "pipelines/m31/bias", "v1"], environment: viaOtherReplica).status == 0)
            let got = try await run(specola, ["kv", "get", "pipelines/m31/bias"], environment: env)
            #expect(got.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "v1")
            let lost = try await run(specola, ["kv", "cas", "--expect", "v0", "pipelines/m31/bias", "v2"], environment: env)
            #expect(lost.status == 6 && lost.stderr.contains("comparison failed"))
            #expect(try await run(specola, ["kv", "cas", "--expect", "v1", "pipelines/m31/bias", "v2"], environment: env).status == 0)
            let keys = try await run(specola, ["kv", "ls", "pipelines/", "--json"], environment: viaOtherReplica)
            #expect(try Specola_V1_KvListResponse(jsonString: keys.stdout).kvs.map(\.key) == ["pipelines/m31/bias"])
            // A stale read is served by that replica itself and catches up within a heartbeat or two.
            try await waitUntil("the stale read to show the new value", timeout: .seconds(5)) {
                try await run(specola, ["kv", "get", "--stale", "pipelines/m31/bias"], environment: viaOtherReplica).stdout.contains("v2")
            }
            #expect(try await run(specola, ["kv", "del", "pipelines/m31/bias"], environment: env).status == 0)
            #expect(try await run(specola, ["kv", "get", "pipelines/m31/bias"], environment: env).status == 4)

            // dev made an admin, a sample project with a member, and ran the sample pipeline as that member.
            #expect(dev.log.contains("sample pipeline survey/reduce-m31 submitted as user/astronomer (project survey)"), "\(dev.log)")
            let projects = try await run(specola, ["projects"], environment: env)
            #expect(projects.stdout.contains("survey") && projects.stdout.contains("astronomer"), "\(projects.stdout)")
            let sampleStatus = try await run(specola, ["job", "status", "reduce-m31", "--json"], environment: env)
            var lenient = JSONDecodingOptions()
            lenient.ignoreUnknownFields = true
            let sampleJob = try Specola_V1_JobStatus(jsonString: sampleStatus.stdout, options: lenient)
            #expect(sampleJob.owner == "astronomer" && sampleJob.project == "survey" && sampleJob.submittedBy == "user/astronomer")

            // A pipeline spec is checked and dry-run placed on the live nodes; nothing is submitted.
            let sampleText = try String(contentsOfFile: BuiltProducts.repositoryRoot + "/Sources/Jobs/Samples/reduce-pipeline.yaml", encoding: .utf8)
            try dir.write("sample-copy.yaml", sampleText.replacingOccurrences(of: "name: reduce-m31", with: "name: reduce-m33"))
            // The running sample holds the nodes' cores: cancel it and wait until they are free again.
            #expect(try await run(specola, ["job", "cancel", "reduce-m31"], environment: env).status == 0)
            var plan = (status: Int32(0), stdout: "", stderr: "")
            try await waitUntil("the dry run to place the copy's first step on a node", timeout: .seconds(60), every: .milliseconds(500)) {
                plan = try await run(BuiltProducts.path("specola"), ["job", "plan", dir.file("sample-copy.yaml")], environment: env)
                return plan.stdout.contains("node1") || plan.stdout.contains("node2")
            }
            #expect(plan.status == 0, "\(plan.stderr)")
            #expect(plan.stdout.contains("reduce-m33/prepare"), "\(plan.stdout)")
            try dir.write("bad.yaml", "apiVersion: specola/v1\nkind: Job\nmetadata: {name: x, owner: a, project: p}\ntasks:\n  - name: t\n    driver: podman\n    image: i\n    resources: {memory: 4 gigs}\n")
            let bad = try await run(BuiltProducts.path("specola"), ["job", "validate", dir.file("bad.yaml")], environment: env)
            #expect(bad.status == 2)
            #expect(bad.stderr.contains("bad.yaml:8:") && bad.stderr.contains("tasks[0].resources.memory"), "\(bad.stderr)")
        } catch {
            Issue.record("\(error)\n--- dev log:\n\(dev.log)")
        }
        dev.signal(SIGINT)
        #expect(try await dev.waitForExit(timeout: .seconds(30)) == 0)
        try await waitUntil("every process specola dev started to be gone", timeout: .seconds(10)) {
            Self.processes(mentioning: dir.file("cluster")).isEmpty
        }
        // Ctrl-C also removed the volume: its namespaces and bricks are gone.
        let namespaces = try await run("ip", ["netns", "list"], environment: [:]).stdout
        #expect(!namespaces.split(separator: "\n").contains { $0.hasPrefix("sdev") }, "\(namespaces)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("cluster/gluster")))
    }
}
