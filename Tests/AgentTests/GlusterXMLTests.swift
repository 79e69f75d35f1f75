import Foundation
import SpecolaProtocol
import Testing

@testable import SpecolaAgent
import CooperativePoolWatch

/// The gluster CLI's --xml answers, captured from a real 3-peer pool (glusterfs 10.3):
/// peers 10.77.14.1-3, replica-3 volume gv0, replica 3 arbiter 1 volume arb (created,
/// never started) and distribute volume dist (stopped).
@Suite(.watchesCooperativePool) struct GlusterXMLTests {
    static let fixtures = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/gluster")
    static let peer1 = "8dbeff58-ebbd-4155-b707-b1bd1515d03c"
    static let peer2 = "194e1f41-1b3a-48a2-a297-aae16e9d7c81"
    static let brick2 = "10.77.14.2:/tmp/h14cap/pool/p2/bricks/gv0"

    static func fixture(_ name: String) throws -> Data {
        try Data(contentsOf: fixtures.appendingPathComponent(name))
    }

    @Test func poolListNamesTheAnsweringPeerAndEveryOther() throws {
        let pool = try GlusterXML.peers(try Self.fixture("pool-list.xml"))
        #expect(pool.localUUID == Self.peer1)
        #expect(pool.peers.map(\.hostname) == ["localhost", "10.77.14.2", "10.77.14.3"])
        #expect(pool.peers.allSatisfy { $0.connected })
        #expect(pool.peers[1].state == "Peer in Cluster")
        #expect(pool.peers.filter { $0.local }.map(\.uuid) == [Self.peer1])
    }

    @Test func aPeerWhoseGlusterdDiedIsDisconnected() throws {
        let pool = try GlusterXML.peers(try Self.fixture("pool-list-peer-down.xml"))
        let connected = Dictionary(uniqueKeysWithValues: pool.peers.map { ($0.hostname, $0.connected) })
        #expect(connected == ["localhost": true, "10.77.14.2": true, "10.77.14.3": false])
    }

    @Test func volumeInfoGivesTypeStatusCountsBricksAndSetOptions() throws {
        let info = try GlusterXML.volumes(try Self.fixture("volume-info.xml"))
        #expect(info.errors.isEmpty)
        #expect(info.volumes.map(\.name) == ["arb", "dist", "gv0"])
        let byName = Dictionary(uniqueKeysWithValues: info.volumes.map { ($0.name, $0) })

        let gv0 = try #require(byName["gv0"])
        #expect(gv0.type == "Replicate")
        #expect(gv0.status == "Started")
        #expect(gv0.replicaCount == 3 && gv0.arbiterCount == 0 && gv0.brickCount == 3)
        #expect(gv0.bricks.map(\.host) == ["10.77.14.1", "10.77.14.2", "10.77.14.3"])
        #expect(gv0.bricks[1].path == "/tmp/h14cap/pool/p2/bricks/gv0")
        #expect(gv0.bricks[1].peerUuid == Self.peer2)
        #expect(gv0.bricks.allSatisfy { $0.replicaSet == 0 && !$0.arbiter })
        #expect(gv0.options["cluster.favorite-child-policy"] == "mtime")
        #expect(gv0.options["cluster.shd-max-threads"] == "4")

        let arb = try #require(byName["arb"])
        #expect(arb.status == "Created")
        #expect(arb.arbiterCount == 1)
        #expect(arb.bricks.map(\.arbiter) == [false, false, true])

        let dist = try #require(byName["dist"])
        #expect(dist.status == "Stopped")
        #expect(dist.type == "Distribute")
        #expect(dist.bricks.map(\.replicaSet) == [0, 1])
    }

    @Test func oneUnreadableVolumeIsNamedAndTheOthersStay() throws {
        var text = String(decoding: try Self.fixture("volume-info.xml"), as: UTF8.self)
        // Break the bricks of `dist` only.
        text = text.replacingOccurrences(
            of: "<name>10.77.14.1:/tmp/h14cap/pool/p1/bricks/dist</name>", with: "<name>no-colon-here</name>")
        text = text.replacingOccurrences(of: ">10.77.14.1:/tmp/h14cap/pool/p1/bricks/dist<", with: "><")
        let info = try GlusterXML.volumes(Data(text.utf8))
        #expect(info.volumes.map(\.name) == ["arb", "gv0"])
        #expect(info.errors.count == 1)
        #expect(info.errors.first?.hasPrefix("volume dist: volume info: brick #1") == true, "\(info.errors)")
    }

    @Test func statusOfAHealthyVolumeHasEveryBrickOnlineAndTheSelfHealDaemons() throws {
        let status = try GlusterXML.status(try Self.fixture("status-gv0-healthy.xml"))
        #expect(status.bricks.count == 3)
        #expect(status.bricks.values.allSatisfy { $0.online && $0.pid > 0 && $0.port > 0 })
        #expect(status.bricks[Self.brick2] == .init(online: true, pid: 30509, port: 50252))
        #expect(status.selfHealDaemons.count == 3)
        #expect(status.selfHealDaemons[Self.peer1]?.online == true)
    }

    @Test func aKilledBrickIsOfflineWithoutPidOrPort() throws {
        let status = try GlusterXML.status(try Self.fixture("status-gv0-brick-down.xml"))
        #expect(status.bricks[Self.brick2] == .init(online: false, pid: 0, port: 0))
        #expect(status.bricks.values.filter { $0.online }.count == 2)
    }

    @Test func aRestartedBrickIsOnlineWithANewPid() throws {
        let status = try GlusterXML.status(try Self.fixture("status-gv0-restarted.xml"))
        let brick = try #require(status.bricks[Self.brick2])
        #expect(brick.online)
        #expect(brick.pid > 0 && brick.pid != 30509)
    }

    @Test func statusOfAStoppedVolumeIsRefusedWithGlusterdsReason() throws {
        #expect {
            try GlusterXML.status(try Self.fixture("status-arb-stopped.xml"))
        } throws: { error in
            (error as? GlusterXMLError)?.code == .refused && "\(error)" == "Volume arb is not started"
        }
    }

    @Test func healthyHealSummaryCountsNothingPending() throws {
        let heal = try GlusterXML.healSummary(try Self.fixture("heal-healthy.xml"))
        #expect(heal.count == 3)
        #expect(heal.values.allSatisfy {
            $0.status == "Connected" && $0.pending == 0 && $0.splitBrain == 0 && $0.possiblyHealing == 0 && $0.total == 0
        })
    }

    @Test func garbledHealSummaryOfADownBrickLeavesItsCountersUnknown() throws {
        let heal = try GlusterXML.healSummary(try Self.fixture("heal-brick-down.xml"))
        let down = try #require(heal[Self.brick2])
        #expect(down.status == "Failed to process entries completely. (Transport endpoint is not connected)")
        #expect(down.pending == nil && down.splitBrain == nil && down.possiblyHealing == nil && down.total == nil)
        // The entries written while it was down wait on the two bricks that hold them.
        let others = heal.filter { $0.key != Self.brick2 }.values
        #expect(others.count == 2)
        #expect(others.allSatisfy { $0.status == "Connected" && $0.pending == 42 && $0.splitBrain == 0 })
    }

    @Test func healSummaryOfAStoppedOrUnreplicatedVolumeIsRefused() throws {
        for (file, reason) in [
            ("heal-arb-stopped.xml", "arb: Not able to fetch volfile from glusterd"),
            ("heal-dist-not-replicated.xml", "Volume dist is not of type replicate/disperse"),
        ] {
            #expect(throws: GlusterXMLError.self) { try GlusterXML.healSummary(try Self.fixture(file)) }
            do {
                _ = try GlusterXML.healSummary(try Self.fixture(file))
            } catch {
                #expect("\(error)".contains(reason), "\(error)")
            }
        }
    }

    @Test func effectiveOptionsIncludeDefaultsWithoutTheirMarker() throws {
        let options = try GlusterXML.options(try Self.fixture("get-gv0-all.xml"))
        #expect(options["cluster.quorum-type"] == "auto")
        #expect(options["cluster.server-quorum-type"] == "off")
        #expect(options["cluster.self-heal-daemon"] == "on")
        #expect(options["cluster.favorite-child-policy"] == "mtime")
        #expect(options["cluster.shd-max-threads"] == "4")
    }

    @Test func outputThatIsNotGlusterXMLSaysWhatItWas() {
        for (output, expected) in [
            ("", "not XML: empty output"),
            ("Connection failed. Please check if gluster daemon is operational.\n", "not XML: 'Connection failed."),
            ("<?xml version=\"1.0\"?><other/>", "no <cliOutput> element"),
        ] {
            do {
                _ = try GlusterXML.healSummary(Data(output.utf8))
                Issue.record("parsed '\(output)'")
            } catch {
                #expect("\(error)".hasPrefix(expected), "\(error)")
            }
        }
    }

    @Test func aTruncatedAnswerInventsNoCounters() throws {
        // libxml2 recovers what it can of a cut-off document; a brick without its counters stays unknown.
        let cut = "<?xml version=\"1.0\"?><cliOutput><healInfo><bricks><brick><name>h:/b</name><status>Connected</status><totalNumberOf"
        let heal = try GlusterXML.healSummary(Data(cut.utf8))
        #expect(heal.values.allSatisfy { $0.pending == nil && $0.splitBrain == nil })
    }

    @Test func brickNamesSplitAtTheColonBeforeThePath() {
        #expect(GlusterXML.splitBrickName("node1:/data/brick")! == ("node1", "/data/brick"))
        #expect(GlusterXML.splitBrickName("fd00::1:/data/b")! == ("fd00::1", "/data/b"))
        #expect(GlusterXML.splitBrickName("/data/brick") == nil)
        #expect(GlusterXML.splitBrickName("node1") == nil)
    }
}
