import Foundation
import SpecolaProtocol
import SwiftProtobuf
import TestSupport
import Testing
import CooperativePoolWatch
#if canImport(Glibc)
import Glibc
#endif

/// HA workloads end to end: the real CLI defines a VM and a pod, the
/// coordinator places them through Raft, agents start them on their own
/// private libvirtd (test driver) and the shared podman, and crashes are
/// restarted in place, then moved to the other node once restarts are spent;
/// a dead node's workloads move once its BMC has powered it off, never before.
@Suite(.serialized, .processTest, .watchesCooperativePool) struct WorkloadTests {
    /// A coordinator and two agents, each agent with a libvirtd of its own.
    final class Cluster: @unchecked Sendable {
        let cluster: LocalCluster
        let libvirt = NodeLibvirtds()

        init(suspectAfter: Double = 3, downAfter: Double = 10, extraConfig: String = "") throws {
            cluster = try LocalCluster(suspectAfter: suspectAfter, downAfter: downAfter, extraConfig: extraConfig)
        }

        /// `bmc`: the agent's bmc config line for each node that has one.
        func start(_ agents: [(name: String, address: String)], bmc: [String: String] = [:]) async throws {
            try await TestPodman.ensureImage()
            try await cluster.startCoordinator()
            for agent in agents {
                let daemon = try await libvirt.start(agent.name, in: cluster.dir.file("libvirt-\(agent.name)"))
                try cluster.writeAgentConfig(agent.name, address: agent.address, extra: """
                    \(bmc[agent.name] ?? "bmc: {mode: none}")
                    libvirt: {uri: "\(daemon.uri)"}
                    \(TestPodman.agentConfig)
                    """)
                try cluster.startAgent(agent.name)
            }
            try await waitUntil("both agents to report libvirt and podman", timeout: .seconds(60), explain: cluster.diagnosis) {
                try await self.cluster.nodes().filter { $0.facts.vms.available && $0.facts.containers.available }.count == agents.count
            }
        }

        func workload(_ kind: String, _ name: String) async throws -> Specola_V1_Workload {
            let result = try await cluster.cli([kind, "show", name, "--json"])
            guard result.status == 0 else { throw CLIFailed(result: result) }
            return try Specola_V1_Workload(jsonString: result.stdout, options: JobTests.lenient)
        }

        /// Waits until the workload runs on `node` as instance `generation`.
        func waitRunning(_ kind: String, _ name: String, on node: String, generation: UInt64, timeout: Duration = .seconds(20)) async throws {
            try await waitUntil("\(kind) \(name) to run on \(node) as instance \(generation)", timeout: timeout) {
                let workload = try await self.workload(kind, name)
                return workload.phase == "running" && workload.node == node && workload.generation == generation
            }
        }

        /// The nodes whose libvirtd has the domain active.
        func vmHosts(_ name: String) async throws -> [String] {
            try await libvirt.hosts(of: name)
        }

        /// The node whose agent played the pod, from its annotation; nil when it does not run.
        func podHost(_ name: String) async throws -> String? {
            let state = try await run("podman", ["pod", "inspect", name, "--format", "{{.State}}"], environment: TestPodman.environment)
            guard state.status == 0, state.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "Running" else { return nil }
            let annotation = try await run("podman", ["inspect", "\(name)-main", "--format", "{{index .Config.Annotations \"org.specola.node\"}}"],
                                           environment: TestPodman.environment)
            return annotation.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        func shutdown(pods: [String]) async {
            await cluster.shutdown()
            for pod in pods {
                _ = try? await run("podman", ["pod", "rm", "--force", "--ignore", "--time", "0", pod], environment: TestPodman.environment)
            }
            await libvirt.stop()
        }
    }

    /// Samples where a VM runs, concurrently with the test, and remembers any moment it ran on two nodes.
    final class DoubleStartWatch: @unchecked Sendable {
        private let lock = NSLock()
        private var seen: [String] = []
        var doubles: [String] { lock.withLock { seen } }

        func watch(_ vm: String, on libvirt: NodeLibvirtds) -> Task<Void, Never> {
            Task {
                while !Task.isCancelled {
                    if let hosts = try? await libvirt.doubleStart(of: vm) {
                        lock.withLock { seen.append("\(vm) on \(hosts)") }
                    }
                    try? await Task.sleep(for: .milliseconds(50))
                }
            }
        }
    }

    /// The watch the failover tests rely on does see a domain active on two nodes, and not one
    /// that moved.
    @Test func theDoubleStartWatchSeesADomainActiveOnTwoNodes() async throws {
        let dir = try TempDir("specola-double-watch")
        let libvirt = NodeLibvirtds()
        let outcome: Result<Void, any Error>
        do {
            try await libvirt.start("node1", in: dir.file("node1"))
            try await libvirt.start("node2", in: dir.file("node2"))
            try dir.write("vm.xml", HAFixtures.domainXML("twice", memoryMiB: 64))
            #expect(try await libvirt["node1"]!.virsh("create", dir.file("vm.xml")).status == 0)
            #expect(try await libvirt.doubleStart(of: "twice") == nil, "active on one node only")
            #expect(try await libvirt["node2"]!.virsh("create", dir.file("vm.xml")).status == 0)
            #expect(try await libvirt.doubleStart(of: "twice") == ["node1", "node2"])
            #expect(try await libvirt["node1"]!.virsh("destroy", "twice").status == 0)
            #expect(try await libvirt.doubleStart(of: "twice") == nil, "moved, not doubled")
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        await libvirt.stop()
        dir.remove()
        try outcome.get()
    }

    /// The `seq.last` of the agent's latest "agent starting" line: its outbox's last sequence after resuming.
    static func lastSeqAtStart(_ log: String) -> UInt64? {
        guard let line = log.split(separator: "\n").last(where: { $0.contains("agent starting") }),
              let field = line.split(separator: " ").first(where: { $0.hasPrefix("seq.last=") }) else { return nil }
        return UInt64(field.dropFirst("seq.last=".count))
    }

    static func writeDefinitions(_ cluster: LocalCluster, vm: String, pod: String) throws {
        try cluster.dir.write("vm.xml", HAFixtures.domainXML(vm, memoryMiB: 256))
        try cluster.dir.write("pod.yaml", HAFixtures.sleeperPod(pod))
    }

    /// The issue's "a node dies": node1 runs a VM, a pod and a job. Its agent and its job are killed;
    /// its VM and pod die when its BMC powers it off. All three then run on node2, never on two nodes
    /// at once, and the chat webhook and the SMTP server each get exactly one NodeDown message.
    @Test func aDeadNodesVMPodAndJobRunElsewhereAfterItsBMCPowersItOffAndChatAndMailHearOnce() async throws {
        try #require(SimulatedBMC.isInstalled, "ipmi_sim is not installed (apt-get install openipmi)")
        let suffix = UUID().uuidString.prefix(6).lowercased()
        let vm = "fovm-\(suffix)"
        let pod = "fopod-\(suffix)"
        let job = "fojob-\(suffix)"
        let bmc = try await SimulatedBMC.start(address: "127.0.2.11")
        defer { bmc.stop() }
        let receiverDir = try TempDir("specola-failover-receivers")
        defer { receiverDir.remove() }
        let receivers = try await AlertReceivers.start(host: "127.0.4.3", in: receiverDir)
        // Lease off: the BMC is the only proof that node1 runs nothing.
        let env: Cluster
        do {
            env = try Cluster(suspectAfter: 1, downAfter: 2, extraConfig: """
                heartbeatInterval: 0.3
                fencing:
                  selfFenceAfter: 0
                  maxFencedFraction: 0.5
                  bmc: {user: admin, passwordFile: \(bmc.passwordFile), timeout: 2}
                  \(SimulatedBMC.bmcAddresses(["node1": bmc]))
                \(receivers.config)
                """)
        } catch {
            await receivers.stop()
            throw error
        }
        let result: Result<Void, any Error>
        do {
            try await Self.failover(env, bmc: bmc, receivers: receivers, vm: vm, pod: pod, job: job)
            result = .success(())
        } catch {
            result = .failure(error)
        }
        // The job's container writes into the cluster's dir: gone before the dir is removed.
        await TestPodman.removeContainers(job: job)
        await env.shutdown(pods: [pod])
        await receivers.stop()
        try result.get()
    }

    static func failover(_ env: Cluster, bmc: SimulatedBMC, receivers: AlertReceivers, vm: String, pod: String, job: String) async throws {
        try await env.start([("node1", "127.0.2.11"), ("node2", "127.0.2.12")], bmc: ["node1": bmc.agentConfigLine])
        let cluster = env.cluster
        try writeDefinitions(cluster, vm: vm, pod: pod)
        // Powering node1 off through its BMC takes its VM and pod with it, at that moment and not before.
        let uri = env.libvirt["node1"]!.uri
        let hook = """

            if [ "$(cat "$S")" = 0 ] && [ ! -f "$(dirname "$0")/powered-off-at" ]; then
              /usr/bin/virsh -q -c '\(uri)' destroy \(vm) >/dev/null 2>&1
              \(TestPodman.shellEnvironment) /usr/bin/podman pod kill \(pod) >/dev/null 2>&1
              echo "$(date +%s%3N)" > "$(dirname "$0")/powered-off-at"
            fi

            """
        let chassis = bmc.workdir.file("chassis.sh")
        try (String(contentsOfFile: chassis, encoding: .utf8) + hook).write(toFile: chassis, atomically: false, encoding: .utf8)
        let watch = DoubleStartWatch()
        let watcher = watch.watch(vm, on: env.libvirt)
        defer { watcher.cancel() }

        #expect(try await cluster.cli(["node", "cordon", "node2"]).status == 0)
        #expect(try await cluster.cli(["vm", "create", vm, "--xml", cluster.dir.file("vm.xml"), "--node", "node1"]).status == 0)
        #expect(try await cluster.cli(["pod", "create", pod, "--kube", cluster.dir.file("pod.yaml"), "--node", "node1"]).status == 0)
        let ledger = try FailoverTests.makeLedger(cluster)
        #expect(try await cluster.cli(["job", "run", "--detach", try FailoverTests.witnessJob(cluster, ledger: ledger, name: job)]).status == 0)
        try await env.waitRunning("vm", vm, on: "node1", generation: 1)
        try await env.waitRunning("pod", pod, on: "node1", generation: 1, timeout: .seconds(60))
        try await waitUntil("job \(job) to run on node1", timeout: .seconds(30)) {
            let task = try await FailoverTests.task(cluster, job: job)
            return task?.state == "running" && task?.node == "node1"
        }
        #expect(try await cluster.cli(["node", "uncordon", "node2"]).status == 0)

        // node1 dies: its agent and its job's container now; its VM and pod when the BMC powers it off.
        let allocation = try #require(try await FailoverTests.task(cluster, job: job)?.allocationID)
        try await cluster.agents["node1"]!.stop(SIGKILL)
        try await TestPodman.run(["rm", "--force", "--time", "0", "specola-\(allocation)"])
        try await waitUntil("the VM, the pod and the job to run on node2", timeout: .seconds(60), every: .milliseconds(100)) {
            let onVM = try await env.workload("vm", vm), onPod = try await env.workload("pod", pod)
            let task = try await FailoverTests.task(cluster, job: job)
            return onVM.phase == "running" && onVM.node == "node2" && onPod.phase == "running" && onPod.node == "node2"
                && task?.state == "running" && task?.node == "node2"
        }
        let node1 = try #require(try await cluster.node("node1"))
        #expect(node1.shownStatus == "fenced", "\(node1.shownStatus): \(node1.statusReason)")
        #expect(node1.statusReason.contains("BMC confirmed chassis power off"), "\(node1.statusReason)")
        let poweredOff = try #require(Int64(try String(contentsOfFile: bmc.workdir.file("powered-off-at"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        let movedVM = try await env.workload("vm", vm), movedPod = try await env.workload("pod", pod)
        for moved in [movedVM, movedPod] {
            #expect(moved.relocations == 1 && moved.generation == 2, "\(moved)")
            let afterFence = moved.startedAtUnixMs - node1.statusSinceUnixMs
            #expect(afterFence < 10_000, "\(moved.name) ran on node2 \(afterFence) ms after node1 was fenced")
            #expect(moved.startedAtUnixMs > poweredOff, "\(moved.name) started before node1 was powered off")
            print("HA failover of \(moved.kind) \(moved.name): running on node2 \(afterFence) ms after node1 was fenced")
        }
        #expect(try await FailoverTests.task(cluster, job: job)?.relocations == 1)
        #expect(try await env.vmHosts(vm) == ["node2"])
        #expect(try await env.podHost(pod) == "node2")
        #expect(watch.doubles.isEmpty, "\(watch.doubles)")
        try await waitUntil("the job's second run to write its ledger", timeout: .seconds(10)) {
            try FailoverTests.runIntervals(ledger).count == 2
        }
        try FailoverTests.expectNoOverlap(ledger)

        // Operators heard of it on chat and by mail, once each.
        try await waitUntil("NodeDown node1 on chat and by mail", timeout: .seconds(20), every: .milliseconds(100)) {
            try !receivers.chat("FIRING", node: "node1").isEmpty && !receivers.mail("FIRING", node: "node1").isEmpty
        }
        // Once both deliveries are committed as notified, no pass sends the firing again.
        try await waitUntil("NodeDown node1's deliveries to be committed", timeout: .seconds(20)) {
            let notified = try await AlertTests.alert(cluster, node: "node1")?.notifiedAtUnixMs ?? [:]
            return notified["chat"] != nil && notified["mail"] != nil
        }
        let chat = try receivers.chat("FIRING", node: "node1"), mail = try receivers.mail("FIRING", node: "node1")
        #expect(chat.count == 1 && mail.count == 1, "chat \(chat.count), mail \(mail.count) NodeDown messages")
        #expect(chat.first?.body.contains("#hpc-ops") == true)
        _ = try? await cluster.cli(["job", "cancel", job])
    }

    @Test func crashedWorkloadsRestartInPlaceThenMoveAndSurviveAnAgentRestart() async throws {
        let suffix = UUID().uuidString.prefix(6).lowercased()
        let vm = "havm-\(suffix)"
        let pod = "hapod-\(suffix)"
        let env = try Cluster()
        // Shut down before returning: a detached cleanup task may never run before the test process exits.
        do {
            try await Self.crashRestartMove(env, vm: vm, pod: pod)
        } catch {
            await env.shutdown(pods: [pod])
            throw error
        }
        await env.shutdown(pods: [pod])
    }

    static func crashRestartMove(_ env: Cluster, vm: String, pod: String) async throws {
        try await env.start([("node1", "127.0.2.1"), ("node2", "127.0.2.2")])
        let cluster = env.cluster
        try writeDefinitions(cluster, vm: vm, pod: pod)
        let watch = DoubleStartWatch()
        let watcher = watch.watch(vm, on: env.libvirt)
        defer { watcher.cancel() }

        let createdVM = try await cluster.cli(["vm", "create", vm, "--xml", cluster.dir.file("vm.xml"), "--node", "node1",
                                               "--max-restarts", "1", "--max-relocations", "1"])
        #expect(createdVM.status == 0, "\(createdVM.stderr)")
        let createdPod = try await cluster.cli(["pod", "create", "--kube", cluster.dir.file("pod.yaml"), "--node", "node1"])
        #expect(createdPod.status == 0, "\(createdPod.stderr)")
        // A name that does not match the definition is refused, and nothing is created.
        let mismatch = try await cluster.cli(["vm", "create", "other", "--xml", cluster.dir.file("vm.xml")])
        #expect(mismatch.status == 2 && mismatch.stderr.contains("must match"), "\(mismatch.stderr)")

        try await env.waitRunning("vm", vm, on: "node1", generation: 1)
        try await env.waitRunning("pod", pod, on: "node1", generation: 1, timeout: .seconds(60))
        #expect(try await env.vmHosts(vm) == ["node1"])
        #expect(try await env.podHost(pod) == "node1")
        let listed = try await cluster.cli(["vm", "list"])
        #expect(listed.stdout.contains(vm) && listed.stdout.contains("running") && listed.stdout.contains("0/1"), "\(listed.stdout)")

        // First crash: restarted on the same node.
        #expect(try await env.libvirt["node1"]!.virsh("destroy", vm).status == 0)
        try await TestPodman.run(["pod", "kill", pod])
        try await env.waitRunning("vm", vm, on: "node1", generation: 2)
        try await env.waitRunning("pod", pod, on: "node1", generation: 2, timeout: .seconds(60))
        #expect(try await env.workload("vm", vm).restarts == 1)
        #expect(try await env.vmHosts(vm) == ["node1"])
        #expect(try await env.podHost(pod) == "node1")

        // Second crash: the restart is spent, so it moves to node2.
        #expect(try await env.libvirt["node1"]!.virsh("destroy", vm).status == 0)
        try await TestPodman.run(["pod", "kill", pod])
        try await env.waitRunning("vm", vm, on: "node2", generation: 3)
        try await env.waitRunning("pod", pod, on: "node2", generation: 3, timeout: .seconds(60))
        let moved = try await env.workload("vm", vm)
        #expect(moved.relocations == 1 && moved.restarts == 0, "\(moved)")
        #expect(try await env.vmHosts(vm) == ["node2"])
        #expect(try await env.podHost(pod) == "node2")

        // The agent on node2 is killed and comes back: it re-attaches, nothing restarts.
        try await cluster.agents["node2"]!.stop(SIGKILL)
        try cluster.startAgent("node2")
        try await waitUntil("node2's agent to re-attach", timeout: .seconds(30)) {
            cluster.agents["node2"]!.log.contains("re-attaching to a workload that outlived the agent")
        }
        // The re-attach events are queued before the agent starts reporting; once its outbox is
        // applied through the sequence it started with, a wrong "exited" would show as a crash.
        let startedWith = try #require(Self.lastSeqAtStart(cluster.agents["node2"]!.log))
        try await waitUntil("node2's reports through seq \(startedWith) to be applied", timeout: .seconds(30)) {
            try await cluster.node("node2")?.lastAppliedSeq ?? 0 >= startedWith
        }
        #expect(try await env.workload("vm", vm).phase == "running")
        #expect(try await env.workload("pod", pod).phase == "running")
        #expect(try await env.workload("vm", vm).generation == 3)
        #expect(try await env.workload("pod", pod).generation == 3)
        #expect(try await env.vmHosts(vm) == ["node2"])

        // Third crash on node2: restart in place once more (restarts count per node)...
        #expect(try await env.libvirt["node2"]!.virsh("destroy", vm).status == 0)
        try await env.waitRunning("vm", vm, on: "node2", generation: 4)
        // ...and the fourth leaves no restart or relocation: error, and it stays down.
        #expect(try await env.libvirt["node2"]!.virsh("destroy", vm).status == 0)
        try await waitUntil("the VM to go to error", timeout: .seconds(20)) { try await env.workload("vm", vm).phase == "error" }
        #expect(try await env.workload("vm", vm).message.contains("relocation limit 1 reached"))
        #expect(try await env.vmHosts(vm).isEmpty)
        #expect(cluster.coordinatorProcess!.log.contains("HA workload in error"))

        // Enable brings it back with fresh limits; disable stops it; delete forgets it.
        #expect(try await cluster.cli(["vm", "enable", vm]).status == 0)
        try await waitUntil("the enabled VM to run", timeout: .seconds(20)) {
            let workload = try await env.workload("vm", vm)
            return workload.phase == "running" && workload.restarts == 0 && workload.relocations == 0
        }
        #expect(try await cluster.cli(["vm", "disable", vm]).status == 0)
        try await waitUntil("the disabled VM to stop", timeout: .seconds(20)) { try await env.workload("vm", vm).phase == "stopped" }
        #expect(try await env.vmHosts(vm).isEmpty)
        let deleted = try await cluster.cli(["pod", "delete", pod])
        #expect(deleted.status == 0, "\(deleted.stderr)")
        #expect(try await env.podHost(pod) == nil)
        #expect(try await cluster.cli(["pod", "show", pod]).status == 4)
        #expect(watch.doubles.isEmpty, "\(watch.doubles)")
    }
}
