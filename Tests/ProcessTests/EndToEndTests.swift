import Foundation
import SpecolaProtocol
import TestSupport
import Testing
import CooperativePoolWatch
#if canImport(Glibc)
import Glibc
import SpecolaProcesses
#endif

/// Real binaries on loopback: agents report over mutual TLS, the CLI shows it.
@Suite(.serialized, .processTest, .watchesCooperativePool) struct EndToEndTests {
    @Test func agentsReportRealFactsThatTheCLIShows() async throws {
        let cluster = try LocalCluster()
        let bmc = try await SimulatedBMC.start(address: "127.0.1.1")
        defer { bmc.stop() }
        do {
            try await cluster.startCoordinator()
            let fixtures = BuiltProducts.repositoryRoot + "/Tests/Fixtures"
            try cluster.writeAgentConfig("node1", address: "127.0.1.1", extra: """
                \(bmc.agentConfigLine)
                libvirt: {uri: "test:///default"}
                podman: {enabled: true, containersConf: \(fixtures)/podman/containers.conf}
                """)
            try cluster.writeAgentConfig("node2", address: "127.0.1.2", extra: """
                bmc: {mode: in-band}
                libvirt: {uri: ""}
                podman: {enabled: false}
                """)
            try cluster.startAgent("node1")
            try cluster.startAgent("node2")
            try await waitUntil("both agents to report", timeout: .seconds(60), explain: cluster.diagnosis) {
                try await cluster.nodes().filter { $0.reportsApplied > 0 && $0.facts.hasCapacity }.count == 2
            }
            let node1 = try #require(try await cluster.node("node1"))
            #expect(node1.shownStatus == "ready")
            #expect(node1.facts.capacity.cpuCores > 0)
            #expect(node1.facts.capacity.labels["rack"] == "r1")
            #expect(!node1.facts.storage.disks.isEmpty)
            #expect(node1.facts.storage.filesystems.contains { $0.mountPoint == "/" })
            #expect(node1.facts.vms.available)
            #expect(node1.facts.vms.vms.contains { $0.name == "test" && $0.state == "running" })
            #expect(node1.facts.containers.available)
            #expect(node1.facts.bmc.present)
            #expect(node1.facts.bmc.power == .on)
            #expect(node1.facts.bmc.sensors.contains { $0.name == "CPU Temp" && $0.state == .nominal })

            // The BMC's CPU temperature crosses its critical threshold: the coordinator
            // knows within two report cycles (1 s each), plus ipmi_sim's 1 s sensor poll and
            // one second for collection and the Raft commit on a loaded 2-core machine.
            try bmc.setCPUTemperature(100)
            let crossed = ContinuousClock.now
            try await waitUntil("CPU Temp critical at the coordinator", timeout: .seconds(10), every: .milliseconds(100)) {
                try await cluster.node("node1")?.facts.bmc.sensors.contains { $0.name == "CPU Temp" && $0.state == .critical } == true
            }
            let lag = ContinuousClock.now - crossed
            // Only a bound against a hang: speed belongs in benchmarks, and a loaded CI machine is slow.
            #expect(lag <= .seconds(20), "critical state took \(lag) to reach the coordinator")
            try await waitUntil("the SEL entry at the coordinator") {
                try await cluster.node("node1")?.recentSel.contains { $0.sensorName == "CPU Temp" && $0.state == .critical } == true
            }
            let metricsText = try await run("/usr/bin/curl", ["-sf", "http://\(cluster.metrics)/metrics"]).stdout
            #expect(metricsText.contains(#"ipmi_temperature_state{id="#) && metricsText.contains(#"name="CPU Temp",node="node1"} 2"#))

            let node2 = try #require(try await cluster.node("node2"))
            // No /dev/ipmi0 here: reported as "no BMC", once, not as a failure storm.
            #expect(!node2.facts.bmc.present)
            #expect(!node2.facts.bmc.reason.isEmpty)
            #expect(!node2.facts.vms.available)

            let table = try await cluster.cli(["nodes"])
            #expect(table.status == 0)
            #expect(table.stdout.contains("node1") && table.stdout.contains("node2"))
            let show = try await cluster.cli(["node", "show", "node1"])
            #expect(show.status == 0)
            #expect(show.stdout.contains("Disks") && show.stdout.contains("Filesystems") && show.stdout.contains("test"))
            let status = try await cluster.cli(["status", "--json"])
            let parsed = try Specola_V1_StatusResponse(jsonString: status.stdout)
            #expect(parsed.nodesTotal == 2)
            let missing = try await cluster.cli(["node", "show", "nope"])
            #expect(missing.status == 4)
            #expect(missing.stderr.contains("specola nodes"))

            let metrics = try await run("/usr/bin/curl", ["-sf", "http://\(cluster.metrics)/metrics"])
            #expect(metrics.stdout.contains(#"specola_node_up{node="node1"} 1"#))
            let healthz = try await run("/usr/bin/curl", ["-sf", "http://\(cluster.metrics)/healthz"])
            #expect(healthz.status == 0)

            let noBMCLines = cluster.agents["node2"]!.log.components(separatedBy: "\n").filter { $0.contains("no local BMC") }
            #expect(noBMCLines.count <= 1)
        } catch {
            Issue.record("\(error)\n--- coordinator log:\n\(cluster.coordinatorProcess?.log ?? "")\n--- node1:\n\(cluster.agents["node1"]?.log ?? "")")
        }
        await cluster.shutdown()
    }

    /// The Done-means check: a 30 s coordinator outage loses no report, and
    /// the agent reconnects on its own.
    @Test func coordinatorOutageLosesNoReport() async throws {
        let outage = Double(ProcessInfo.processInfo.environment["SPECOLA_TEST_OUTAGE_SECONDS"] ?? "30") ?? 30
        let cluster = try LocalCluster(coordinatorHost: "127.0.0.12")
        do {
            try await cluster.startCoordinator()
            // A loaded CI machine may need more than the default 5 s to drain on SIGTERM.
            try cluster.writeAgentConfig("steady", address: "127.0.1.10", reportInterval: 0.5, extra: """
                stopDrainTimeout: 15
                bmc: {mode: none}
                libvirt: {uri: "test:///default"}
                podman: {enabled: false}
                """)
            try cluster.startAgent("steady")
            try await waitUntil("first reports", timeout: .seconds(30)) { try await cluster.node("steady")?.reportsApplied ?? 0 >= 3 }
            let before = try #require(try await cluster.node("steady")).lastAppliedSeq

            try await cluster.coordinatorProcess!.stop(SIGKILL)
            try await Task.sleep(for: .seconds(outage))
            try await cluster.startCoordinator()

            // The agent kept reporting into its outbox: about two reports a second.
            let expectedAtLeast = before + UInt64(outage)
            try await waitUntil("the outbox to drain after the outage", timeout: .seconds(60)) {
                try await cluster.node("steady")?.lastAppliedSeq ?? 0 >= expectedAtLeast
            }
            let after = try #require(try await cluster.node("steady"))
            #expect(after.seqGaps == 0)
            // Every sequence number from 1 was applied exactly once.
            #expect(after.reportsApplied == after.lastAppliedSeq)

            // And a kill -9 of the agent itself keeps numbering and loses nothing.
            try await cluster.agents["steady"]!.stop(SIGKILL)
            try cluster.startAgent("steady")
            let resumedFrom = after.lastAppliedSeq
            try await waitUntil("the restarted agent to report", timeout: .seconds(30)) {
                try await cluster.node("steady")?.lastAppliedSeq ?? 0 >= resumedFrom + 3
            }
            let final = try #require(try await cluster.node("steady"))
            #expect(final.seqGaps == 0)
            #expect(final.reportsApplied == final.lastAppliedSeq)
            let connects = cluster.agents["steady"]!.log.components(separatedBy: "connected to coordinator").count - 1
            #expect(connects >= 1)

            // SIGTERM drains: the agent exits 0 with nothing left unsent.
            let agent = cluster.agents["steady"]!
            agent.signal(SIGTERM)
            #expect(try await agent.waitForExit(timeout: .seconds(15)) == 0)
            let stopLine = agent.log.split(separator: "\n").last { $0.contains("agent stopped") }
            #expect(stopLine?.contains("outbox.pending=0") == true, "stop line: \(stopLine ?? "none")")
        } catch {
            Issue.record("\(error)\n--- coordinator log:\n\(cluster.coordinatorProcess?.log ?? "")\n--- agent:\n\(cluster.agents["steady"]?.log ?? "")")
        }
        await cluster.shutdown()
    }

    @Test func aBadConfigExitsTwoNamingFileLineAndField() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        try dir.write("agent.yaml", "nodeName: a\ncoordinators: [127.0.0.11:7450]\nreportInterval: often\ntls: {ca: a, cert: b, key: c}\n")
        let agent = try await run(BuiltProducts.path("specola-agent"), ["--config", dir.file("agent.yaml")])
        #expect(agent.status == 2)
        #expect(agent.stderr.contains("\(dir.file("agent.yaml")):3:1: field 'reportInterval'"))

        try dir.write("coordinator.yaml", "name: c1\nlisten: 127.0.0.11:7450\ntls: {ca: a, cert: b, key: c}\nsuspectAftr: 3\n")
        let coordinator = try await run(BuiltProducts.path("specola-coordinator"), ["--config", dir.file("coordinator.yaml")])
        #expect(coordinator.status == 2)
        #expect(coordinator.stderr.contains(":4:1: field 'suspectAftr': unknown field"))
    }
}
