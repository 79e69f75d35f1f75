import Foundation
import SpecolaAlerting
import SpecolaAlertDelivery
import SpecolaProtocol
import TestSupport
import Testing
@testable import SpecolaClusterCore
@testable import SpecolaCoordinator
import CooperativePoolWatch
import SpecolaDaemon

/// The example config in packaging/ must load, so it cannot drift from the code.
@Suite(.watchesCooperativePool) struct PackagedConfigTests {
    @Test func exampleCoordinatorConfigLoads() throws {
        // The example names /etc/specola/bmc-password; point it at a temp file with a password in it.
        let dir = try TempDir()
        defer { dir.remove() }
        try dir.write("bmc-password", "s3cret\n")
        let text = try String(contentsOfFile: BuiltProducts.repositoryRoot + "/packaging/coordinator.yaml", encoding: .utf8)
            .replacingOccurrences(of: "/etc/specola/bmc-password", with: dir.file("bmc-password"))
        try dir.write("coordinator.yaml", text)
        let config = try ConfigFile.load(CoordinatorConfig.self, path: dir.file("coordinator.yaml"))
        #expect(config.name == "c1")
        #expect(config.peers.map(\.id) == [1, 2, 3])
        #expect(config.selfMember.raftAddress == "10.0.0.11:7451", "the example turns on the direct Raft channel")
        #expect(config.raft.tickMs == 30)
        #expect(config.downAfter > config.suspectAfter)
        #expect(config.fencing.bmc?.password == "s3cret")
        #expect(config.fencing.bmcAddresses["node1"]?.port == 623, "the example names node1's BMC")
        #expect(config.healthPolicy.selfFenceAfterMs == 20_000)
        #expect(config.alerting.receivers.isEmpty, "the alerting example is commented out")
        #expect(!config.nodes.autoAccept, "a production node waits for `specola node accept`")
        #expect(config.jobs.retention == 604_800)
    }

    @Test func anUnreadableBMCPasswordFileIsAClearError() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        try dir.write("coordinator.yaml", """
            name: c1
            listen: 127.0.0.1:7450
            tls: {ca: a, cert: b, key: c}
            fencing:
              bmc: {user: admin, passwordFile: /nonexistent/bmc-password}
            """)
        #expect(throws: (any Error).self) { try ConfigFile.load(CoordinatorConfig.self, path: dir.file("coordinator.yaml")) }
        do {
            _ = try ConfigFile.load(CoordinatorConfig.self, path: dir.file("coordinator.yaml"))
        } catch {
            #expect("\(error)".contains("coordinator.yaml:5:"), "\(error)")
            #expect("\(error)".contains("cannot read /nonexistent/bmc-password"), "\(error)")
        }
    }

    @Test func aVolumesHealPriorityIsReadAndAnUnknownOneIsAClearError() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let base = "name: c1\nlisten: 127.0.0.1:7450\ntls: {ca: a, cert: b, key: c}\n"
        try dir.write("coordinator.yaml", base + "storage:\n  volumes: {archive: {priority: 10}, scratch: {healPriority: least}}\n")
        let config = try ConfigFile.load(CoordinatorConfig.self, path: dir.file("coordinator.yaml"))
        #expect(config.storage.volume("archive").healPriority == .normal, "the default: heals at normal priority")
        #expect(config.storage.volume("scratch").healPriority == .least)
        try dir.write("coordinator.yaml", base + "storage:\n  volumes: {scratch: {healPriority: low}}\n")
        do {
            _ = try ConfigFile.load(CoordinatorConfig.self, path: dir.file("coordinator.yaml"))
            Issue.record("healPriority: low was accepted")
        } catch {
            #expect("\(error)".contains("coordinator.yaml:5:"), "\(error)")
            #expect("\(error)".contains("'low' is not a heal priority; use one of normal, least"), "\(error)")
        }
    }

    /// The commented alerting example (lines starting with "#: ") must load too, with its
    /// password file in place.
    @Test func exampleAlertingSectionLoads() throws {
        let dir = try TempDir("specola-config")
        defer { dir.remove() }
        try dir.write("smtp-password", "example-password\n")
        try dir.write("bmc-password", "s3cret\n")
        let text = try String(contentsOfFile: BuiltProducts.repositoryRoot + "/packaging/coordinator.yaml", encoding: .utf8)
        let example = text.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.hasPrefix("#: ") ? String($0.dropFirst(3)) : String($0) }
            .joined(separator: "\n")
            .replacingOccurrences(of: "/etc/specola/smtp-password", with: dir.file("smtp-password"))
            .replacingOccurrences(of: "/etc/specola/bmc-password", with: dir.file("bmc-password"))
        let config = try ConfigFile.decode(CoordinatorConfig.self, yaml: example, file: "coordinator.yaml")
        let alerting = config.alerting
        #expect(alerting.receivers.map(\.name) == ["chat", "mail"])
        #expect(alerting.routing.routes.map(\.receiver) == ["chat", "mail", "chat"])
        #expect(alerting.routing.routes[0].groupWaitMs == 0 && alerting.routing.routes[0].groupIntervalMs == 30_000)
        #expect(alerting.routing.inhibitRules == [.nodeDownMutesItsAlerts])
        #expect(alerting.thresholdRules.map(\.name) == ["HighLoad", "ScratchAlmostFull"])
        #expect(alerting.thresholdRules[0].forMs == 300_000)
        #expect(alerting.rules.agentLostAfterMs == 5_000)
        guard case .email(let mail) = alerting.receivers[1] else {
            Issue.record("the second receiver is the e-mail one")
            return
        }
        #expect(mail.smtp.password == SMTPPassword("example-password"), "read from the file, newline dropped")
        #expect(mail.smtp.startTLS && mail.smtp.requireTLS)
        #expect(mail.externalURL == "https://specola.example.org")
    }
}
