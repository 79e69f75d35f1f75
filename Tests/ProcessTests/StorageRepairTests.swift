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

/// Specola repairs a real GlusterFS pool beyond a brick restart: a failing disk moved onto a
/// spare (exactly once across an agent kill -9 and a coordinator kill -9, and across a leader
/// kill -9 in a group of three replicas), a bad spare refused, split-brain resolved per volume
/// policy. The failing disk is a loop device under the brick whose SMART verdict comes from a
/// smartctl stand-in (Tests/Fixtures/smart) that prints the real smartctl's JSON; the
/// collector's parsing of the real smartctl is checked in StorageCollectorTests.
@Suite(.serialized, .processTest, .watchesCooperativePool) struct StorageRepairTests {
    // The limit also counts the wait for a process-test slot (swift-testing applies it around
    // the scope of traits), so it is a hang guard only.
    @Test(.timeLimit(.minutes(10)))
    func aFailingDiskMovesOntoASpareOnceAcrossAgentAndCoordinatorKills() async throws {
        // Set before the pool starts: peer 2's bricks on a loop device, unmounted and detached afterwards.
        let loop = LoopDisk()
        try await GlusterFixture.withPool("specola-replace", prefix: "srp", net: "10.77.204", mounts: { ["\($0)/mnt"] },
                                          cleanUp: { _ in await loop.remove() }) { pool in
            let cluster = try LocalCluster(coordinatorHost: "127.0.5.21", suspectAfter: 2, downAfter: 6, extraConfig: """
                storage:
                  replaceAfter: 1
                  restartRetryAfter: 3
                  spareBricks: {n4: [\(pool.directory)/p4/missing/brick, \(pool.directory)/p4/bricks/spare]}
                """)
            try await cluster.withCleanup(before: { pool.execIgnoringErrors(1, "umount", "-l", pool.directory + "/mnt") }) {
                try await Self.failDiskAndExpectReplacement(pool, cluster, loop: loop)
            }
        }
    }

    /// A loop device with ext4, mounted on the host: a real disk for the disk collector.
    final class LoopDisk: @unchecked Sendable {
        private let lock = NSLock()
        private var state: (image: String, device: String, mountPoint: String)?

        /// Makes a 64 MiB image in `directory`, attaches it and mounts it on `mountPoint`; returns "loopN".
        func make(in directory: String, mountPoint: String) async throws -> String {
            let image = directory + "/disk.img"
            try await GlusterFixture.run("truncate", ["-s", "64M", image])
            let device = try await GlusterFixture.output("losetup", ["-f", "--show", image])
            lock.withLock { state = (image, device, mountPoint) }
            try await GlusterFixture.run("mkfs.ext4", ["-q", device])
            try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
            try await GlusterFixture.run("mount", [device, mountPoint])
            return URL(fileURLWithPath: device).lastPathComponent
        }

        func remove() async {
            guard let state = lock.withLock({ state }) else { return }
            _ = try? await runProcess("umount", ["-l", state.mountPoint], timeout: .seconds(20))
            _ = try? await runProcess("losetup", ["-d", state.device], timeout: .seconds(20))
        }
    }

    static func failDiskAndExpectReplacement(_ pool: GlusterPool, _ cluster: LocalCluster, loop: LoopDisk) async throws {
        // Peer 2's bricks live on a disk of their own, mounted before its glusterd starts
        // (its mount namespace copies the host's then).
        let disk = try await loop.make(in: pool.directory, mountPoint: "\(pool.directory)/p2/bricks")
        let smartctl = pool.directory + "/smartctl"
        try FileManager.default.copyItem(atPath: GlusterFixture.smartctlStandIn, toPath: smartctl)
        try await pool.up(peers: 4)
        let mount = pool.directory + "/mnt"
        let bricks = (1...3).map { "\(pool.address($0)):\(pool.brickDirectory($0))/gv0" }
        let spare = "\(pool.address(4)):\(pool.brickDirectory(4))/spare"
        let missing = "\(pool.address(4)):\(pool.directory)/p4/missing/brick"
        try await pool.gluster(1, ["volume", "create", "gv0", "replica", "3"] + bricks + ["force"])
        try await pool.gluster(1, "volume", "start", "gv0")
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        try await pool.exec(1, "mount", "-t", "glusterfs", "\(pool.address(1)):/gv0", mount)
        try await pool.exec(1, "sh", "-c", "for i in $(seq 1 40); do head -c $((2048 * i)) /dev/urandom > \(mount)/before$i; done")
        let written = try await GlusterFixture.checksums(pool, directory: mount, matching: "before*")
        #expect(written.count == 40)

        try await cluster.startCoordinator()
        try cluster.startGlusterAgents(pool, peers: 1...4, address: { "127.0.5.\(20 + $0)" }, wrapper: [GlusterFixture.holdReplace, pool.directory],
                                       extra: { _ in "bmc: {mode: none}\nsmart: {command: \(smartctl), recheckInterval: 1}" })
        let cli = cluster.glusterCLI
        _ = try await waitUntilValue("every brick of gv0 online and hosted by n1...n3 on n2's \(disk) with SMART passed, n4 known", timeout: .seconds(40)) {
            let list = try await GlusterFixture.volumeList(cli)
            guard let view = list.volumes.first(where: { $0.volume.name == "gv0" }) else { return nil as Specola_V1_GlusterVolumeView? }
            let n4 = list.nodes.first { $0.name == "n4" }?.available == true
            let n2Disk = try await cluster.node("n2")?.facts.storage.disks.first { $0.name == disk }
            return n4 && n2Disk?.smartStatus == "passed" && view.bricks.map(\.node) == ["n1", "n2", "n3"]
                && view.bricks[1].brick.disks == [disk] && view.bricks.allSatisfy { $0.brick.online } ? view : nil
        }

        // The disk under n2's brick fails: smartctl says so.
        try "/dev/\(disk)\n".write(toFile: pool.directory + "/smart-failing", atomically: true, encoding: .utf8)

        // First the planner picks the spare whose directory does not exist: n4 refuses it, nothing changes.
        let refused = try await waitUntilValue("the replacement onto the missing spare to fail", timeout: .seconds(40)) {
            try await GlusterFixture.detail(cli, "gv0").actions.first { $0.kind == .replaceBrick && $0.newBrick == missing && $0.state == .failed }
        }
        #expect(refused.spareUnusable && refused.message.contains("does not exist"), "\(refused)")
        #expect(refused.brick == bricks[1] && refused.node == "n4")
        #expect(refused.reason.contains("SMART") && refused.reason.contains(disk), "\(refused.reason)")
        try await waitUntil("a StorageActionFailed alert naming the missing spare", timeout: .seconds(20)) {
            let alerts = try await cluster.cli(["alerts", "--json"]).stdout
            return alerts.contains("StorageActionFailed") && alerts.contains(refused.id)
        }
        #expect(try await GlusterFixture.brickNames(pool) == bricks, "nothing changed after the refused spare")

        // Then the good spare: the action reaches n4's gluster, which holds it.
        let held = try await waitUntilValue("the replacement onto the good spare to reach gluster", timeout: .seconds(30)) {
            try await GlusterFixture.detail(cli, "gv0").actions.first { $0.kind == .replaceBrick && $0.newBrick == spare && $0.state == .pending }
                .flatMap { FileManager.default.fileExists(atPath: "\(pool.directory)/replace-started.1") ? $0 : nil }
        }

        // The coordinator dies (kill -9) and comes back: it sends the pending action again; n4 does not start it twice.
        try await cluster.coordinatorProcess!.stop(SIGKILL)
        try await cluster.startCoordinator()
        try await waitUntil("the new leader to hand the pending action to n4 again", timeout: .seconds(30)) {
            cluster.agents["n4"]!.log.split(separator: "\n").contains { $0.contains("instruction already executed") && $0.contains(held.id) }
        }
        #expect(GlusterFixture.starts(of: held.id, in: cluster.agents["n4"]!.log) == 1)

        // n4's agent dies in the middle of the replacement: gluster never ran it.
        try await cluster.agents["n4"]!.stop(SIGKILL)
        try await waitUntil("the held gluster call to give up with its agent", timeout: .seconds(10)) {
            FileManager.default.fileExists(atPath: "\(pool.directory)/replace-abandoned.log")
        }
        #expect(try await GlusterFixture.brickNames(pool) == bricks)
        FileManager.default.createFile(atPath: "\(pool.directory)/replace-go", contents: Data())
        try cluster.startAgent("n4")

        // The interrupted action is closed as failed (never run again); a new one moves the brick, then heals.
        let interrupted = try await waitUntilValue("the interrupted action closed by the restarted agent", timeout: .seconds(30)) {
            try await GlusterFixture.detail(cli, "gv0").actions.first { $0.id == held.id && $0.state == .failed }
        }
        #expect(interrupted.message.contains("not run again"), "\(interrupted.message)")
        let expected = [bricks[0], spare, bricks[2]]
        _ = try await waitUntilValue("gv0 on n1, n4's spare and n3, online, nothing to heal", timeout: .seconds(60)) {
            try await GlusterFixture.volume(cli, "gv0").flatMap { view in
                view.bricks.map { "\($0.brick.host):\($0.brick.path)" } == expected && view.bricks.allSatisfy {
                    $0.brick.online && $0.brick.hasHealPending && $0.brick.healPending == 0
                } ? view : nil
            }
        }
        #expect(try await GlusterFixture.brickNames(pool) == expected, "the old brick left the volume")
        #expect(try await GlusterFixture.checksums(pool, directory: mount, matching: "before*") == written)
        try await waitUntil("the spare brick to hold every file", timeout: .seconds(30)) {
            try await GlusterFixture.checksums(pool, directory: "\(pool.brickDirectory(4))/spare", matching: "before*") == written
        }

        // Exactly once: gluster ran one replace-brick; each action was started at most once.
        try GlusterFixture.expectOneReplaceBrick(in: pool)
        let actions = try await GlusterFixture.detail(cli, "gv0").actions.filter { $0.kind == .replaceBrick }
        #expect(actions.filter { $0.state == .succeeded }.count == 1, "\(actions)")
        let log = cluster.agents["n4"]!.log
        for action in actions {
            #expect(GlusterFixture.starts(of: action.id, in: log) <= 1, "\(action.id) started \(GlusterFixture.starts(of: action.id, in: log)) times")
        }
        let shown = try await cluster.cli(["volume", "show", "gv0"])
        #expect(shown.stdout.contains("replace-brick") && shown.stdout.contains(spare), "\(shown)")
    }

    // The limit also counts the wait for a process-test slot (swift-testing applies it around
    // the scope of traits), so it is a hang guard only.
    @Test(.timeLimit(.minutes(10)))
    func splitBrainIsResolvedByEachVolumesPolicyAndManualOnlyAlerts() async throws {
        try await GlusterFixture.withPool("specola-split", prefix: "ssb", net: "10.77.205",
                                          mounts: { dir in Self.splitVolumes.map { "\(dir)/mnt-\($0)" } }) { pool in
            let source = "\(pool.address(1)):\(pool.brickDirectory(1))/sbs"
            // sbs starts manual in the config; the test sets source-brick with `specola volume policy`.
            let cluster = try LocalCluster(coordinatorHost: "127.0.5.31", suspectAfter: 2, downAfter: 6, extraConfig: """
                storage:
                  restartRetryAfter: 3
                  volumes:
                    sbm: {splitBrain: latest-mtime}
                    sbb: {splitBrain: bigger-file}
                    sbs: {splitBrain: manual}
                    sbx: {splitBrain: manual}
                """)
            try await cluster.withCleanup(before: {
                for volume in Self.splitVolumes { pool.execIgnoringErrors(1, "umount", "-l", "\(pool.directory)/mnt-\(volume)") }
            }) {
                try await Self.makeSplitBrainAndExpectPolicies(pool, cluster, source: source)
            }
        }
    }

    static let splitVolumes = ["sbm", "sbb", "sbs", "sbx"]

    static func makeSplitBrainAndExpectPolicies(_ pool: GlusterPool, _ cluster: LocalCluster, source: String) async throws {
        try await pool.up(peers: 2)
        // In each volume, file f: first 8 KiB written while brick 1 is down (only brick 2 has it),
        // then 100 bytes, later, while brick 2 is down (only brick 1). Each blames the other.
        var bigger: [String: String] = [:]
        var newer: [String: String] = [:]
        for volume in splitVolumes {
            let made = try await makeSplitBrain(pool, volume: volume)
            bigger[volume] = made.bigger
            newer[volume] = made.newer
        }

        try await cluster.startCoordinator()
        try cluster.startGlusterAgents(pool, peers: 1...2, address: { "127.0.5.\(30 + $0)" })
        try await waitUntil("every volume to report f in split-brain", timeout: .seconds(40)) {
            let list = try await GlusterFixture.volumeList(cluster.glusterCLI)
            return splitVolumes.allSatisfy { name in
                list.volumes.first { $0.volume.name == name }?.volume.splitBrainFiles.contains { $0.hasSuffix("f") } == true
            }
        }
        let policy = try await cluster.cli(["volume", "policy", "sbs", "--split-brain", "source-brick", "--source-brick", source, "--priority", "5"])
        #expect(policy.status == 0 && policy.stdout.contains("source-brick"), "\(policy)")
        let badPolicy = try await cluster.cli(["volume", "policy", "sbs", "--split-brain", "source-brick", "--source-brick", "nohost:/nope"])
        #expect(badPolicy.status == 4 && badPolicy.stderr.contains("no brick"), "\(badPolicy)")

        // Each policy's winner, copied to both bricks.
        let winners = ["sbm": newer["sbm"]!, "sbb": bigger["sbb"]!, "sbs": newer["sbs"]!]
        for (volume, winner) in winners.sorted(by: { $0.key < $1.key }) {
            do {
                _ = try await waitUntilValue("\(volume)'s split-brain resolved", timeout: .seconds(40)) {
                    try await GlusterFixture.detail(cluster.glusterCLI, volume).actions.first { $0.kind == .resolveSplitBrain && $0.state == .succeeded }
                }
            } catch {
                let actions = (try? await GlusterFixture.detail(cluster.glusterCLI, volume).actions.map { "\($0.id) \($0.state) \($0.message)" }) ?? []
                let ended = cluster.agents.values.flatMap { $0.log.split(separator: "\n").filter { $0.contains("storage action") } }.suffix(10)
                throw SetupFailed(description: "\(error); \(volume)'s actions: \(actions); agents: \(ended.joined(separator: "\n"))")
            }
            for peer in 1...2 {
                let copy = try await pool.exec(peer, "sha256sum", "\(pool.brickDirectory(peer))/\(volume)/f")
                #expect(copy.hasPrefix(winner), "\(volume): brick \(peer) holds \(copy), the policy's winner is \(winner)")
            }
        }
        let shown = try await cluster.cli(["volume", "show", "sbs"])
        #expect(shown.stdout.contains("split-brain source-brick") && shown.stdout.contains("set by"), "\(shown.stdout)")

        // manual: an alert names the file; nothing is resolved, both copies stay.
        try await waitUntil("a SplitBrain alert naming sbx's file", timeout: .seconds(20)) {
            let alerts = try await cluster.cli(["alerts", "--json"]).stdout
            return alerts.contains("SplitBrain") && alerts.contains("volume sbx") && alerts.contains("/f")
        }
        #expect(try await GlusterFixture.detail(cluster.glusterCLI, "sbx").actions.filter { $0.kind == .resolveSplitBrain }.isEmpty)
        #expect(try await pool.exec(1, "sha256sum", "\(pool.brickDirectory(1))/sbx/f").hasPrefix(newer["sbx"]!))
        #expect(try await pool.exec(2, "sha256sum", "\(pool.brickDirectory(2))/sbx/f").hasPrefix(bigger["sbx"]!))
    }

    /// Makes f of `volume` (replica 2 over peers 1 and 2) a data split-brain; returns the sha256 of
    /// the bigger, older copy (on brick 2) and of the smaller, newer one (on brick 1).
    static func makeSplitBrain(_ pool: GlusterPool, volume: String) async throws -> (bigger: String, newer: String) {
        let bricks = (1...2).map { "\(pool.address($0)):\(pool.brickDirectory($0))/\(volume)" }
        try await pool.gluster(1, ["volume", "create", volume, "replica", "2"] + bricks + ["force"])
        for (option, value) in [("cluster.quorum-type", "none"), ("cluster.self-heal-daemon", "off"), ("cluster.data-self-heal", "off"),
                                ("cluster.metadata-self-heal", "off"), ("cluster.entry-self-heal", "off"),
                                // Backend mtimes, not the ctime feature's copies, for latest-mtime to compare.
                                ("features.ctime", "off")] {
            try await pool.gluster(1, "volume", "set", volume, option, value)
        }
        try await pool.gluster(1, "volume", "start", volume)
        let mount = "\(pool.directory)/mnt-\(volume)"
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        try await pool.exec(1, "mount", "-t", "glusterfs", "\(pool.address(1)):/\(volume)", mount)
        try await pool.exec(1, "sh", "-c", "echo base > \(mount)/f")

        try await killBrick(pool, volume: volume, peer: 1)
        try await writeUntilItSucceeds(pool, "head -c 8192 /dev/urandom > \(mount)/f")
        let bigger = String(try await pool.exec(2, "sha256sum", "\(pool.brickDirectory(2))/\(volume)/f").prefix(64))
        // latest-mtime needs mtimes that differ: the second write comes two clock seconds later.
        let firstMtime = try await pool.exec(2, "stat", "-c", "%Y", "\(pool.brickDirectory(2))/\(volume)/f")
        let written = Int(firstMtime.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        try await waitUntil("the clock two seconds past the first write", timeout: .seconds(5)) {
            Int(Date().timeIntervalSince1970) >= written + 2
        }
        try await restartBricks(pool, volume: volume)
        try await killBrick(pool, volume: volume, peer: 2)
        try await writeUntilItSucceeds(pool, "head -c 100 /dev/urandom > \(mount)/f")
        let newer = String(try await pool.exec(1, "sha256sum", "\(pool.brickDirectory(1))/\(volume)/f").prefix(64))
        try await restartBricks(pool, volume: volume)
        try await pool.gluster(1, "volume", "set", volume, "cluster.self-heal-daemon", "on")
        #expect(bigger != newer)
        return (bigger, newer)
    }

    static func brickPID(_ pool: GlusterPool, volume: String, peer: Int) async throws -> Int32 {
        let status = try await pool.gluster(peer, ["volume", "status", volume, "\(pool.address(peer)):\(pool.brickDirectory(peer))/\(volume)", "--xml"])
        guard let start = status.range(of: "<pid>"), let end = status.range(of: "</pid>", range: start.upperBound..<status.endIndex),
              let pid = Int32(status[start.upperBound..<end.lowerBound]) else { throw SetupFailed(description: "no brick pid in \(status)") }
        return pid
    }

    static func killBrick(_ pool: GlusterPool, volume: String, peer: Int) async throws {
        let pid = try await brickPID(pool, volume: volume, peer: peer)
        #expect(kill(pid, SIGKILL) == 0)
        try await waitUntil("brick process \(pid) gone") { !FileManager.default.fileExists(atPath: "/proc/\(pid)") }
    }

    /// `start force`, until the volume's `count` bricks run again.
    static func restartBricks(_ pool: GlusterPool, volume: String, count: Int = 2) async throws {
        try await waitUntil("\(count) bricks of \(volume) online", timeout: .seconds(30)) {
            _ = try? await pool.gluster(1, "volume", "start", volume, "force")
            let status = try await pool.gluster(1, ["volume", "status", volume, "--xml"])
            return status.components(separatedBy: "<status>1</status>").count - 1 >= count
        }
    }

    /// A write through the mount right after a brick died or came back can fail until the client reconnects.
    static func writeUntilItSucceeds(_ pool: GlusterPool, _ script: String) async throws {
        try await waitUntil("the write `\(script)` to succeed", timeout: .seconds(30)) {
            (try? await pool.exec(1, "sh", "-c", script)) != nil
        }
    }

    /// n1's brick holds the only up-to-date copy (n2's brick is down, repair turned off so it
    /// stays so); n1 goes silent; its BMC answers, yet fencing does not power it off and says why.
    // The limit also counts the wait for a process-test slot (swift-testing applies it around
    // the scope of traits), so it is a hang guard only.
    @Test(.timeLimit(.minutes(10)))
    func aSilentNodeHoldingTheOnlyGoodCopyIsNotPoweredOff() async throws {
        try #require(SimulatedBMC.isInstalled, "ipmi_sim is not installed (apt-get install openipmi)")
        let bmc = try await SimulatedBMC.start(address: "127.0.5.41")
        defer { bmc.stop() }
        try await GlusterFixture.withPool("specola-hold", prefix: "shf", net: "10.77.206", mounts: { ["\($0)/mnt"] }) { pool in
            let cluster = try LocalCluster(coordinatorHost: "127.0.5.40", suspectAfter: 1, downAfter: 2, extraConfig: """
                heartbeatInterval: 0.3
                storage: {enabled: false}
                fencing:
                  selfFenceAfter: 0
                  maxFencedFraction: 0.5
                  bmc: {user: admin, passwordFile: \(bmc.passwordFile), timeout: 2}
                  \(SimulatedBMC.bmcAddresses(["n1": bmc]))
                """)
            try await cluster.withCleanup(before: { pool.execIgnoringErrors(1, "umount", "-l", pool.directory + "/mnt") }) {
                try await Self.silenceTheOnlyGoodCopy(pool, cluster, bmc: bmc, mount: pool.directory + "/mnt")
            }
        }
    }

    static func silenceTheOnlyGoodCopy(_ pool: GlusterPool, _ cluster: LocalCluster, bmc: SimulatedBMC, mount: String) async throws {
        try await pool.up(peers: 2)
        let bricks = (1...2).map { "\(pool.address($0)):\(pool.brickDirectory($0))/hv" }
        try await pool.gluster(1, ["volume", "create", "hv", "replica", "2"] + bricks + ["force"])
        try await pool.gluster(1, "volume", "set", "hv", "cluster.quorum-type", "none")
        try await pool.gluster(1, "volume", "start", "hv")
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        try await pool.exec(1, "mount", "-t", "glusterfs", "\(pool.address(1)):/hv", mount)
        try await killBrick(pool, volume: "hv", peer: 2)
        try await writeUntilItSucceeds(pool, "for i in $(seq 1 20); do echo $i > \(mount)/f$i; done")

        try await cluster.startCoordinator()
        try cluster.startGlusterAgents(pool, peers: 1...2, address: { "127.0.5.\(40 + $0)" },
                                       extra: { $0 == 1 ? bmc.agentConfigLine : "bmc: {mode: none}" })
        try await waitUntil("n1's brick listed as the only one with entries to heal, n1's BMC read", timeout: .seconds(40)) {
            guard try await cluster.node("n1")?.facts.bmc.present == true else { return false }
            let view = try await GlusterFixture.volumeList(cluster.glusterCLI).volumes.first { $0.volume.name == "hv" }
            return view?.bricks.first { $0.node == "n1" }.map { $0.brick.hasHealPending && $0.brick.healPending > 0 } == true
        }

        // n1 goes silent: its agent dies; its BMC still answers.
        try await cluster.agents["n1"]!.stop(SIGKILL)
        try await waitUntil("a FencingHeldForStorage alert for n1 naming its brick", timeout: .seconds(30)) {
            let alerts = try await cluster.cli(["alerts", "--json"]).stdout
            return alerts.contains("FencingHeldForStorage") && alerts.contains(bricks[0])
        }
        // Well past the point where fencing would have powered it off (down after 2 s, a BMC answer in well under 1 s).
        let held = ContinuousClock.now
        while ContinuousClock.now - held < .seconds(6) {
            #expect(try bmc.power().powerStatus() == .on, "n1 was powered off though it holds the only good copy")
            try await Task.sleep(for: .milliseconds(500))
        }
        let n1 = try #require(try await cluster.node("n1"))
        #expect(n1.shownStatus != "fenced", "\(n1.shownStatus): \(n1.statusReason)")
    }

    /// Three coordinator replicas; an operator's replace-brick reaches the spare's gluster (held
    /// there), and the leader is killed -9. The next leader hands the action out again; the agent's
    /// ledger knows it, gluster runs replace-brick once, and the outcome is committed by the new leader.
    // The limit also counts the wait for a process-test slot (swift-testing applies it around
    // the scope of traits), so it is a hang guard only.
    @Test(.timeLimit(.minutes(10)))
    func aReplaceBrickInFlightWhenTheLeaderDiesHappensOnceUnderTheNextLeader() async throws {
        try await GlusterFixture.withPool("specola-handoff", prefix: "sho", net: "10.77.208") { pool in
            try await ReplicaGroup.with(size: 3, start: false) { group in
                try await Self.killLeaderDuringReplace(pool, group)
            }
        }
    }

    static func killLeaderDuringReplace(_ pool: GlusterPool, _ group: ReplicaGroup) async throws {
        try group.appendToConfigs("suspectAfter: 2\ndownAfter: 6\nstorage: {restartRetryAfter: 3}")
        try await group.startAll()
        try await pool.up(peers: 4)
        let bricks = (1...3).map { "\(pool.address($0)):\(pool.brickDirectory($0))/gv0" }
        let spare = "\(pool.address(4)):\(pool.brickDirectory(4))/spare"
        try await pool.gluster(1, ["volume", "create", "gv0", "replica", "3"] + bricks + ["force"])
        try await pool.gluster(1, "volume", "start", "gv0")

        var agents: [String: ChildProcess] = [:]
        for peer in 1...4 {
            let name = "n\(peer)", address = "127.0.\(group.subnet).\(20 + peer)"
            let tls = try group.pki.issue(.node, name, sans: [address])
            try group.dir.write("\(name).yaml", """
                nodeName: \(name)
                coordinators: [\(group.endpoints.map(\.description).joined(separator: ", "))]
                address: \(address)
                dataDir: \(group.dir.file("data/\(name)"))
                heartbeatInterval: 0.5
                reportInterval: 1
                tls: {ca: \(tls.ca), cert: \(tls.cert), key: \(tls.key)}
                \(try GlusterFixture.agentLines(pool, peer: peer, wrapper: [GlusterFixture.holdReplace, pool.directory]))
                """)
            let agent = try ChildProcess(name: "agent-\(name)", executable: BuiltProducts.path("specola-agent"),
                                         arguments: ["--config", group.dir.file("\(name).yaml")], logDirectory: group.dir.path)
            group.track(agent)
            agents[name] = agent
        }
        // The CLI with every replica's address: it goes on to the next one and follows the leader.
        var environment = group.cliEnvironment(1)
        environment["SPECOLA_ADDR"] = group.endpoints.map(\.description).joined(separator: ",")
        let cliEnvironment = environment
        let cli: GlusterFixture.CLI = { try await run(BuiltProducts.path("specola"), $0, environment: cliEnvironment, timeout: .seconds(30)) }
        try await waitUntil("every brick of gv0 online and hosted by n1...n3, n4 known to gluster", timeout: .seconds(40)) {
            let list = try await GlusterFixture.volumeList(cli)
            let view = list.volumes.first { $0.volume.name == "gv0" }
            return list.nodes.first { $0.name == "n4" }?.available == true && view?.bricks.map(\.node) == ["n1", "n2", "n3"]
                && view?.bricks.allSatisfy { $0.brick.online } == true
        }

        // The operator moves n2's brick to n4's spare; n4's gluster call is held mid-action.
        let replace = try await cli(["brick", "replace", "gv0", bricks[1], spare])
        #expect(replace.status == 0, "\(replace)")
        let held = try await waitUntilValue("the replacement to reach n4's gluster", timeout: .seconds(30)) {
            try await GlusterFixture.detail(cli, "gv0").actions.first { $0.kind == .replaceBrick && $0.newBrick == spare && $0.state == .pending }
                .flatMap { FileManager.default.fileExists(atPath: "\(pool.directory)/replace-started.1") ? $0 : nil }
        }

        // The leader dies; another replica takes over and hands the pending action to n4 again.
        let leader = try await group.waitForLeader()
        let resentBefore = Self.resends(of: held.id, in: agents["n4"]!.log)
        try await group.kill(leader)
        let next = try await group.waitForLeader(excluding: [leader])
        try await waitUntil("the next leader (c\(next)) to hand the pending action to n4 again", timeout: .seconds(30)) {
            Self.resends(of: held.id, in: agents["n4"]!.log) > resentBefore
        }
        #expect(FileManager.default.fileExists(atPath: "\(pool.directory)/replace-started.1"))
        #expect(!FileManager.default.fileExists(atPath: "\(pool.directory)/replace-started.2"), "gluster was called twice")

        // The held call goes on; its outcome is committed under the next leader.
        FileManager.default.createFile(atPath: "\(pool.directory)/replace-go", contents: Data())
        let done = try await waitUntilValue("the replacement committed as succeeded", timeout: .seconds(40)) {
            try await GlusterFixture.detail(cli, "gv0").actions.first { $0.id == held.id && $0.state == .succeeded }
        }
        #expect(await group.leader() == next, "the outcome was committed under c\(next)")
        #expect(done.finishedAtUnixMs > 0)
        let expected = [bricks[0], spare, bricks[2]]
        #expect(try await GlusterFixture.brickNames(pool) == expected)
        try GlusterFixture.expectOneReplaceBrick(in: pool)
        #expect(GlusterFixture.starts(of: held.id, in: agents["n4"]!.log) == 1)
        let replaces = try await GlusterFixture.detail(cli, "gv0").actions.filter { $0.kind == .replaceBrick }
        #expect(replaces.map(\.id) == [held.id], "one replace action: \(replaces)")
    }

    /// How often an agent's log says a coordinator handed it instruction `id` it had already claimed.
    static func resends(of id: String, in log: String) -> Int {
        log.split(separator: "\n").filter { $0.contains("instruction already executed") && $0.contains(id) }.count
    }

    /// Time to full redundancy (scripts/bench-heal.sh), as issue 14 defines it: a brick dies while
    /// 1,000 files (100 MiB) are written; from the kill to zero entries to heal on every brick, with
    /// Specola repairing. The files are made on local disk before the clock starts and written with
    /// one `cp -r`, the same copy the raw anchor times: the timed part is the failure, the client's
    /// writes (which no repair can shorten: files written while the brick is down are what must heal)
    /// and the repair. Anchors in the same run: the raw copy of the same 100 MiB between two
    /// directories; the same copy into the healthy volume (the writes alone); gluster alone with the
    /// brick left down for as long (entries still pending); gluster's own heal, at its default heal
    /// priority (ga's policy is `least`), after an operator's `volume start force` by hand (from
    /// that command to zero entries).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["SPECOLA_BENCH_HEAL"] == "1"), .timeLimit(.minutes(10)))
    func timeToRedundancyBenchmark() async throws {
        try await GlusterFixture.withPool("specola-bench-heal", prefix: "sbh", net: "10.77.207",
                                          mounts: { dir in ["gs", "ga"].map { "\(dir)/mnt-\($0)" } }) { pool in
            let cluster = try LocalCluster(coordinatorHost: "127.0.5.51", suspectAfter: 2, downAfter: 6, extraConfig: "storage: {restartRetryAfter: 5, volumes: {ga: {healPriority: least}}}")
            try await cluster.withCleanup { try await Self.benchmark(pool, cluster, dir: pool.directory) }
        }
    }

    static let benchFiles = 1000
    static let benchFileBytes = 100 * 1024 * 1024 / 1000

    static func benchmark(_ pool: GlusterPool, _ cluster: LocalCluster, dir: String) async throws {
        // The data set, on local disk, before any clock; then (a) the raw copy of it.
        let source = "\(dir)/data"
        try await GlusterFixture.run("sh", ["-c", "mkdir -p \(source) && for i in $(seq 1 \(benchFiles)); do head -c \(benchFileBytes) /dev/urandom > \(source)/f$i; done && sync"])
        let copyStart = ContinuousClock.now
        try await GlusterFixture.run("sh", ["-c", "cp -r \(source) \(dir)/raw-copy && sync"])
        let rawCopy = ContinuousClock.now - copyStart
        try await GlusterFixture.run("rm", ["-rf", "\(dir)/raw-copy"])

        try await pool.up()
        for volume in ["gs", "ga"] {
            let bricks = (1...3).map { "\(pool.address($0)):\(pool.brickDirectory($0))/\(volume)" }
            try await pool.gluster(1, ["volume", "create", volume, "replica", "3"] + bricks + ["force"])
            try await pool.gluster(1, "volume", "start", volume)
            let mount = "\(dir)/mnt-\(volume)"
            try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
            try await pool.exec(1, "mount", "-t", "glusterfs", "\(pool.address(1)):/\(volume)", mount)
        }
        // The writes alone: the same copy into ga with every brick up.
        let healthyStart = ContinuousClock.now
        try await writeBenchFiles(pool, from: source, to: "\(dir)/mnt-ga/healthy")
        let healthyWrite = ContinuousClock.now - healthyStart

        // Specola repairs gs.
        try await cluster.startCoordinator()
        // The agents at the production defaults: a report every 5 s, gluster's pool, volumes and brick
        // processes read every 10 s (a dead brick of the node is seen in /proc at the next report),
        // heal counts every 30 s (each a glfsheal client that looks up every listed entry on every brick).
        try cluster.startGlusterAgents(pool, peers: 1...3, address: { "127.0.5.\(50 + $0)" },
                                       reportInterval: 5, interval: 10, healInfoInterval: 30)
        try await waitUntil("gs bricks hosted by n1...n3", timeout: .seconds(40)) {
            try await GlusterFixture.volume(cluster.glusterCLI, "gs")?.bricks.map(\.node) == ["n1", "n2", "n3"]
        }
        // A volume Specola manages heals at normal priority: the planner's setting is in force before the kill.
        try await waitUntil("gs healing at normal priority (performance.enable-least-priority off)", timeout: .seconds(60)) {
            try await GlusterFixture.volume(cluster.glusterCLI, "gs")?.volume.options["performance.enable-least-priority"] == "off"
        }
        let loadBefore = loadAverage()
        let killed = ContinuousClock.now
        let killedUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
        try await killBrick(pool, volume: "gs", peer: 2)
        try await writeBenchFiles(pool, from: source, to: "\(dir)/mnt-gs/d")
        let writing = ContinuousClock.now - killed
        try await waitUntil("every brick of gs connected with nothing to heal", timeout: .seconds(300), every: .milliseconds(250)) {
            try await pendingEntries(pool, volume: "gs") == 0
        }
        let specola = ContinuousClock.now - killed
        let restarts = try await GlusterFixture.detail(cluster.glusterCLI, "gs").actions.filter { $0.kind == .restartBrick }
        await cluster.shutdown()

        // Gluster alone on ga: the brick stays down for as long; then an operator's `start force`.
        let aloneKilled = ContinuousClock.now
        try await killBrick(pool, volume: "ga", peer: 2)
        try await writeBenchFiles(pool, from: source, to: "\(dir)/mnt-ga/d")
        let aloneWrite = ContinuousClock.now - aloneKilled
        let left = specola - (ContinuousClock.now - aloneKilled)
        if left > .zero { try await Task.sleep(for: left) }
        let stillPending = try await pendingEntries(pool, volume: "ga", requireConnected: false)
        let forced = ContinuousClock.now
        try await restartBricks(pool, volume: "ga", count: 3)
        _ = try? await pool.gluster(1, "volume", "heal", "ga")
        try await waitUntil("every brick of ga connected with nothing to heal", timeout: .seconds(300), every: .milliseconds(250)) {
            try await pendingEntries(pool, volume: "ga") == 0
        }
        let manual = ContinuousClock.now - forced
        for volume in ["gs", "ga"] { try await pool.exec(1, "umount", "-l", "\(dir)/mnt-\(volume)") }

        let target = .seconds(10) + rawCopy * 2
        print("BENCH heal: Specola, brick kill to full redundancy (\(benchFiles) files, 100 MiB copied in meanwhile): \(seconds(specola)) s: target 10 s + 2 x raw = \(seconds(target)) s: \(specola <= target ? "met" : "MISSED")")
        print("BENCH heal:   ratio to the target: \(ratio(specola, target)); to the raw copy: \(ratio(specola, rawCopy)); to the copy into the healthy volume: \(ratio(specola, healthyWrite))")
        print("BENCH heal:   of which the client's copy through the mount (brick down, then restarted and healing): \(seconds(writing)) s; after the copy: \(seconds(specola - writing)) s")
        print("BENCH heal:   timeline from the kill: \(timeline(restarts, killedUnixMs: killedUnixMs, writing: writing, total: specola))")
        print("BENCH heal: raw copy of the same 100 MiB between two directories: \(seconds(rawCopy)) s; the same copy into the healthy volume: \(seconds(healthyWrite)) s; into the volume with the brick left down (gluster alone): \(seconds(aloneWrite)) s")
        print("BENCH heal: machine load (1-min average) before the kill: \(loadBefore), at the end: \(loadAverage()) (2 cores; the copy through FUSE is CPU-bound, so any other load stretches every figure)")
        print("BENCH heal: gluster alone, brick left down \(seconds(specola)) s: \(stillPending.map(String.init) ?? "unknown") entries still pending (it never heals by itself)")
        print("BENCH heal: gluster at its defaults after an operator's `volume start force` by hand: \(seconds(manual)) s from the command to zero entries (plus however long the operator takes to notice)")
        #expect(stillPending ?? 1 > 0, "the anchor must show gluster does not heal alone")
    }

    static func ratio(_ a: Duration, _ b: Duration) -> String {
        b > .zero ? String(format: "%.2f", (a / b)) : "n/a"
    }

    /// Kill, each restart Specola decided, the brick back with its heal triggered, the writer done, nothing to heal.
    static func timeline(_ restarts: [Specola_V1_StorageAction], killedUnixMs: Int64, writing: Duration, total: Duration) -> String {
        func at(_ unixMs: Int64) -> String { String(format: "%.1f s", Double(unixMs - killedUnixMs) / 1000) }
        var steps = ["killed 0.0 s"]
        for action in restarts {
            steps.append("restart \(action.id) decided \(at(action.createdAtUnixMs))")
            if action.agentFinishedAtUnixMs > 0 { steps.append("brick online and heal triggered \(at(action.agentFinishedAtUnixMs)) (\(action.state): \(action.message))") }
        }
        if restarts.isEmpty { steps.append("no restart committed") }
        steps.append("writer done \(seconds(writing)) s")
        steps.append("nothing to heal \(seconds(total)) s")
        return steps.joined(separator: ", ")
    }

    static func loadAverage() -> String {
        (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").first.map(String.init) ?? "unknown"
    }

    static func seconds(_ duration: Duration) -> String {
        String(format: "%.1f", Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
    }

    /// The data set copied into the mount with one `cp -r`, inside peer 1's namespaces (where the mount is).
    static func writeBenchFiles(_ pool: GlusterPool, from source: String, to target: String) async throws {
        try await pool.exec(1, ["cp", "-r", source, target], timeout: .seconds(300))
    }

    /// Entries to heal summed over the bricks (`volume heal VOL info`); nil when a brick cannot be counted
    /// and `requireConnected`, else the sum over those that can.
    static func pendingEntries(_ pool: GlusterPool, volume: String, requireConnected: Bool = true) async throws -> Int? {
        let output = try await pool.gluster(1, "volume", "heal", volume, "info")
        var total = 0
        var bricks = 0
        for line in output.split(separator: "\n") where line.hasPrefix("Number of entries:") {
            bricks += 1
            guard let count = Int(line.dropFirst("Number of entries:".count).trimmingCharacters(in: .whitespaces)) else {
                if requireConnected { return nil }
                continue
            }
            total += count
        }
        return bricks == 3 || !requireConnected ? total : nil
    }
}
