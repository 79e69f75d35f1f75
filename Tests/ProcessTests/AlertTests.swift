import Foundation
import SpecolaProtocol
import SwiftProtobuf
import TestSupport
import Testing
import CooperativePoolWatch
#if canImport(Glibc)
import Glibc
#endif

/// One request the webhook fixture recorded.
struct WebhookDelivery: Decodable {
    var headers: [String: String]
    var body: String
    var received_at_unix_ms: Int64

    var idempotencyKey: String { headers["Idempotency-Key"] ?? "" }
}

/// One line of the SMTP fixture's log: a message or an AUTH attempt.
struct MailDelivery: Decodable {
    var event: String
    var tls: Bool
    var data: String?
    var authenticated: Bool?
    var received_at_unix_ms: Int64?

    /// The `X-Specola-Idempotency-Key` header of a message.
    var idempotencyKey: String {
        (data ?? "").split(whereSeparator: \.isNewline).first { $0.hasPrefix("X-Specola-Idempotency-Key:") }
            .map { $0.dropFirst("X-Specola-Idempotency-Key:".count).trimmingCharacters(in: .whitespaces) } ?? ""
    }
}

/// The chat webhook and the SMTP server (STARTTLS required, AUTH) that the coordinator
/// under test notifies, and the `alerting:` config section that points at them.
struct AlertReceivers {
    static let user = "alerts"
    static let password = "pw-9Zr!never-logged"

    let webhook: FixtureServer
    let smtp: FixtureServer
    let config: String

    /// Starts both fixtures on `host`; their files go to `dir`.
    /// `smtpReplyDelayMs`: the SMTP server records each message, then waits this long before its 250.
    static func start(host: String, in dir: TempDir, smtpReplyDelayMs: Int = 0) async throws -> AlertReceivers {
        let python = try await Python.withAiosmtpd()
        let (cert, key) = try await selfSignedCertificate(in: dir, name: "smtp", host: host)
        let webhook = try await FixtureServer.start("webhook_receiver", python: Python.any, host: host, directory: dir)
        let smtp: FixtureServer
        do {
            smtp = try await FixtureServer.start(
                "smtp_server", python: python, host: host,
                arguments: ["--cert", cert, "--key", key, "--require-tls", "--user", user, "--password", password,
                            "--reply-delay-ms", "\(smtpReplyDelayMs)"], directory: dir)
        } catch {
            await webhook.stop()
            throw error
        }
        try dir.write("smtp-password", password + "\n")
        let config = """
            alerting:
              receivers:
                - name: chat
                  webhook: {url: "http://\(host):\(webhook.port)/hooks/T000/B000", format: slack, channel: "#hpc-ops"}
                - name: mail
                  email:
                    from: "Specola <alerts@example.org>"
                    to: [ops@example.org]
                    smtp: {host: \(host), port: \(smtp.port), starttls: required, caFile: \(cert), username: \(user), passwordFile: \(dir.file("smtp-password"))}
              routes:
                - receivers: [chat, mail]
                  groupBy: [alertname, node]
                  groupWait: 0
                  groupInterval: 1
                  repeatInterval: 3600
            """
        return AlertReceivers(webhook: webhook, smtp: smtp, config: config)
    }

    func stop() async {
        await webhook.stop()
        await smtp.stop()
    }

    /// Starts the receivers on `host`, runs `body` and stops them (and removes their files) whatever happens.
    static func with(host: String, smtpReplyDelayMs: Int = 0, _ body: (AlertReceivers) async throws -> Void) async throws {
        let dir = try TempDir("specola-alert-receivers")
        defer { dir.remove() }
        let receivers = try await start(host: host, in: dir, smtpReplyDelayMs: smtpReplyDelayMs)
        let outcome: Result<Void, any Error>
        do { outcome = .success(try await body(receivers)) } catch { outcome = .failure(error) }
        await receivers.stop()
        try outcome.get()
    }

    func chat() throws -> [WebhookDelivery] { try webhook.records(WebhookDelivery.self) }
    func mail() throws -> [MailDelivery] { try smtp.records(MailDelivery.self).filter { $0.event == "message" } }

    /// Chat messages whose title is `[STATE:n] alertname=RULE node=NODE`.
    func chat(_ state: String, rule: String = "NodeDown", node: String) throws -> [WebhookDelivery] {
        try chat().filter { $0.body.contains("[\(state):") && $0.body.contains("alertname=\(rule) node=\(node)") }
    }

    func mail(_ state: String, rule: String = "NodeDown", node: String) throws -> [MailDelivery] {
        try mail().filter { ($0.data ?? "").contains("Subject: [\(state):") && ($0.data ?? "").contains("alertname=\(rule) node=\(node)") }
    }
}

/// Alerting end to end: a real coordinator evaluates the built-in rules, commits the alert
/// lifecycle through Raft and notifies a chat webhook (Slack format) and an SMTP server
/// (aiosmtpd, STARTTLS and AUTH); operators use the real CLI.
@Suite(.serialized, .processTest, .watchesCooperativePool) struct AlertTests {
    static let receiverHost = "127.0.4.1"

    /// A coordinator with fast liveness thresholds (suspect after 1 s, down after 2 s) and the
    /// receivers' alerting section, plus the named agents, all reporting.
    static func startCluster(_ receivers: AlertReceivers, agents: [(String, String)]) async throws -> LocalCluster {
        let cluster = try LocalCluster(coordinatorHost: "127.0.4.11", suspectAfter: 1, downAfter: 2, extraConfig: receivers.config)
        try await cluster.startCoordinator()
        for (name, address) in agents {
            try cluster.writeAgentConfig(name, address: address, extra: """
                bmc: {mode: none}
                libvirt: {uri: ""}
                podman: {enabled: false}
                """)
            try cluster.startAgent(name)
        }
        try await waitUntil("every agent to report", timeout: .seconds(60)) {
            try await cluster.nodes().filter { $0.reportsApplied > 0 && $0.shownStatus == "ready" }.count == agents.count
        }
        return cluster
    }

    /// Runs `body` with receivers and a cluster, and stops everything (only our own PIDs) afterwards.
    static func withCluster(agents: [(String, String)], _ body: (LocalCluster, AlertReceivers) async throws -> Void) async throws {
        try await AlertReceivers.with(host: receiverHost) { receivers in
            var cluster: LocalCluster?
            do {
                cluster = try await startCluster(receivers, agents: agents)
                try await body(cluster!, receivers)
            } catch {
                if let log = cluster?.coordinatorProcess?.log { FileHandle.standardError.write(Data("coordinator log:\n\(log.suffix(8000))\n".utf8)) }
                await cluster?.shutdown()
                throw error
            }
            await cluster?.shutdown()
        }
    }

    /// Three replicas with fast liveness (suspect 1 s, down 2 s) and the receivers' alerting
    /// section, running, with agent `name` reporting to them.
    static func startAlertingGroup(_ group: ReplicaGroup, _ receivers: AlertReceivers, agent name: String) async throws -> ChildProcess {
        try group.appendToConfigs("suspectAfter: 1\ndownAfter: 2\n" + receivers.config)
        try await group.startAll()
        let leader = try await group.waitForLeader()
        let agent = try RaftChaosTests.startAgent(name, in: group)
        try await waitUntil("agent \(name) to report", timeout: .seconds(60)) {
            let nodes = try await group.cli(["nodes", "--json"], via: leader)
            return try Specola_V1_ListNodesResponse(jsonString: nodes.stdout, options: JobTests.lenient).nodes
                .contains { $0.name == name && $0.shownStatus == "ready" && $0.reportsApplied > 0 }
        }
        return agent
    }

    static func alerts(_ cluster: LocalCluster, all: Bool = false) async throws -> [Specola_V1_AlertView] {
        let result = try await cluster.cli(["alerts", "--json"] + (all ? ["--all"] : []))
        guard result.status == 0 else { throw CLIFailed(result: result) }
        return try Specola_V1_ListAlertsResponse(jsonString: result.stdout, options: JobTests.lenient).alerts
    }

    static func alert(_ cluster: LocalCluster, rule: String = "NodeDown", node: String, all: Bool = true) async throws -> Specola_V1_AlertView? {
        try await alerts(cluster, all: all).first { $0.rule == rule && $0.labels["node"] == node }
    }

    @Test func nodeDownReachesChatAndMailOnceWithinASecondAndTheResolveFollows() async throws {
        try await Self.withCluster(agents: [("alpha", "127.0.4.21")]) { cluster, receivers in
            #expect(try await Self.alerts(cluster, all: true).isEmpty, "a healthy cluster has no alerts")
            try await cluster.agents["alpha"]!.stop(SIGKILL)

            try await waitUntil("NodeDown alpha on the chat webhook", timeout: .seconds(30), every: .milliseconds(50)) {
                try !receivers.chat("FIRING", node: "alpha").isEmpty
            }
            try await waitUntil("NodeDown alpha by e-mail", timeout: .seconds(30), every: .milliseconds(50)) {
                try !receivers.mail("FIRING", node: "alpha").isEmpty
            }
            let fired = try #require(try await Self.alert(cluster, node: "alpha"))
            #expect(fired.state == "firing" && fired.severity == "critical" && fired.transition == 1)
            let chat = try receivers.chat("FIRING", node: "alpha")[0]
            let mail = try receivers.mail("FIRING", node: "alpha")[0]
            let chatLatency = chat.received_at_unix_ms - fired.startsAtUnixMs
            let mailLatency = (mail.received_at_unix_ms ?? .max) - fired.startsAtUnixMs
            print("NodeDown alpha: committed at \(fired.startsAtUnixMs); webhook after \(chatLatency) ms, e-mail after \(mailLatency) ms")
            #expect(chatLatency >= 0 && chatLatency <= 1_000, "webhook latency from the committed transition: \(chatLatency) ms")
            #expect(mailLatency >= 0 && mailLatency <= 5_000, "e-mail latency: \(mailLatency) ms")

            // Slack's shape with the configured channel, and a key a receiver can drop duplicates by.
            let payload = try JSONSerialization.jsonObject(with: Data(chat.body.utf8)) as? [String: Any]
            #expect(payload?["channel"] as? String == "#hpc-ops")
            #expect((payload?["text"] as? String)?.contains("specola alert ack \(fired.id)") == true)
            #expect(chat.idempotencyKey.count == 32)
            #expect(mail.tls && mail.authenticated == true, "the mail went inside STARTTLS, after AUTH")
            #expect(mail.idempotencyKey.count == 32 && mail.idempotencyKey != chat.idempotencyKey, "a key per receiver, group and transition")

            try await waitUntil("both deliveries to be committed", timeout: .seconds(10)) {
                let notified = try await Self.alert(cluster, node: "alpha")?.notifiedAtUnixMs ?? [:]
                return notified["chat"] != nil && notified["mail"] != nil
            }
            let table = try await cluster.cli(["alerts"])
            #expect(table.status == 0 && table.stdout.contains("NodeDown") && table.stdout.contains("node=alpha"), "\(table.stdout)")

            // The agent comes back: once it has registered, the alert resolves and both hear it.
            try cluster.startAgent("alpha")
            try await waitUntil("the resolve on the chat webhook", timeout: .seconds(30), every: .milliseconds(50)) {
                try !receivers.chat("RESOLVED", node: "alpha").isEmpty
            }
            try await waitUntil("the resolve by e-mail", timeout: .seconds(30), every: .milliseconds(50)) {
                try !receivers.mail("RESOLVED", node: "alpha").isEmpty
            }
            let resolved = try #require(try await Self.alert(cluster, node: "alpha"))
            #expect(resolved.state == "resolved" && resolved.transition == 2)
            #expect(try await Self.alerts(cluster).isEmpty, "nothing fires any more")

            // Exactly one message per transition and receiver, each with its own key.
            #expect(try receivers.chat("FIRING", node: "alpha").count == 1)
            #expect(try receivers.mail("FIRING", node: "alpha").count == 1)
            #expect(try receivers.chat("RESOLVED", node: "alpha").count == 1)
            #expect(try receivers.mail("RESOLVED", node: "alpha").count == 1)
            let keys = try receivers.chat().map(\.idempotencyKey)
            #expect(Set(keys).count == keys.count, "no key was delivered twice: \(keys)")
            #expect(!receivers.smtp.process.log.contains(AlertReceivers.password))
            #expect(!(cluster.coordinatorProcess?.log.contains(AlertReceivers.password) ?? true), "the SMTP password is never logged")
        }
    }

    @Test func operatorsSilenceAckAndExpireThroughTheCLI() async throws {
        try await Self.withCluster(agents: [("bravo", "127.0.4.22"), ("charlie", "127.0.4.23")]) { cluster, receivers in
            let added = try await cluster.cli([
                "silence", "add", "--match", "node=bravo", "--match", "alertname=NodeDown", "--for", "2h", "--comment", "disk swap", "--json",
            ])
            #expect(added.status == 0, "\(added.stderr)")
            let silence = try Specola_V1_SilenceView(jsonString: added.stdout, options: JobTests.lenient)
            #expect(silence.state == "active" && silence.matchers == ["node=\"bravo\"", "alertname=\"NodeDown\""])
            let listed = try await cluster.cli(["silence", "list"])
            #expect(listed.stdout.contains(String(silence.id.prefix(8))) && listed.stdout.contains("disk swap"), "\(listed.stdout)")

            // bravo dies under the silence: the alert is committed and shown as silenced, not sent.
            try await cluster.agents["bravo"]!.stop(SIGKILL)
            try await waitUntil("NodeDown bravo to fire, silenced", timeout: .seconds(30)) {
                try await Self.alert(cluster, node: "bravo", all: false)?.muted == "silenced"
            }
            // charlie dies after that. The plan that sends charlie's alert also saw bravo's, so
            // once charlie's arrives, bravo's would have been sent by then if the silence did not hold.
            try await cluster.agents["charlie"]!.stop(SIGKILL)
            try await waitUntil("NodeDown charlie on the chat webhook", timeout: .seconds(30), every: .milliseconds(50)) {
                try !receivers.chat("FIRING", node: "charlie").isEmpty
            }
            try await waitUntil("NodeDown charlie by e-mail", timeout: .seconds(30), every: .milliseconds(50)) {
                try !receivers.mail("FIRING", node: "charlie").isEmpty
            }
            #expect(try receivers.chat("FIRING", node: "bravo").isEmpty, "a silenced alert was delivered")
            #expect(try receivers.mail("FIRING", node: "bravo").isEmpty, "a silenced alert was delivered")
            let table = try await cluster.cli(["alerts"])
            print("specola alerts:\n\(table.stdout)")
            #expect(table.stdout.contains("silenced by silence \(silence.id.prefix(8))"), "\(table.stdout)")

            // Ack charlie's alert by a prefix of its id.
            let charlie = try #require(try await Self.alert(cluster, node: "charlie"))
            let ack = try await cluster.cli(["alert", "ack", String(charlie.id.prefix(6)), "--for", "30m"])
            #expect(ack.status == 0, "\(ack.stderr)")
            let acked = try #require(try await Self.alert(cluster, node: "charlie"))
            #expect(acked.muted == "acked" && acked.ackedBy == "user/admin", "\(acked)")
            let window = acked.ackedUntilUnixMs - Int64(Date().timeIntervalSince1970 * 1000)
            #expect(window > 25 * 60_000 && window <= 30 * 60_000)
            print("specola alert ack: \(ack.stdout)specola alerts:\n\(try await cluster.cli(["alerts"]).stdout)")

            // Mistakes get the documented exit codes.
            #expect(try await cluster.cli(["alert", "ack", "ffffffffffff"]).status == 4)
            #expect(try await cluster.cli(["silence", "add", "--match", "node=~(", "--for", "1h"]).status == 2)
            #expect(try await cluster.cli(["silence", "expire", "nope"]).status == 4)

            // Expiring the silence lets the notification that bravo's alert is owed go out.
            let expired = try await cluster.cli(["silence", "expire", String(silence.id.prefix(8)), "--json"])
            #expect(expired.status == 0, "\(expired.stderr)")
            #expect(try Specola_V1_SilenceView(jsonString: expired.stdout, options: JobTests.lenient).state == "expired")
            try await waitUntil("NodeDown bravo on the chat webhook after the silence ended", timeout: .seconds(10), every: .milliseconds(50)) {
                try !receivers.chat("FIRING", node: "bravo").isEmpty
            }
            #expect(try await cluster.cli(["silence", "list"]).stdout.contains("no silences"))
            let all = try await cluster.cli(["silence", "list", "--all", "--json"])
            #expect(try Specola_V1_ListSilencesResponse(jsonString: all.stdout, options: JobTests.lenient).silences.map(\.state) == ["expired"])
        }
    }

    /// Three replicas; the leader is killed the moment the first notification arrives, so its
    /// `markNotified` may or may not be committed. The new leader must not announce the
    /// transition again under a new key (a resend under the same key is what the key is for),
    /// and the rest of the lifecycle goes on from the new leader.
    @Test func aLeaderKilledRightAfterAnAlertFiresDoesNotDuplicateIt() async throws {
        try await AlertReceivers.with(host: "127.0.4.2") { try await Self.leaderKill($0) }
    }

    /// The alerts `id` knows, resolved ones too.
    static func alerts(_ group: ReplicaGroup, via id: UInt64) async throws -> [Specola_V1_AlertView] {
        let result = try await group.cli(["alerts", "--all", "--json"], via: id)
        guard result.status == 0 else { throw CLIFailed(result: result) }
        return try Specola_V1_ListAlertsResponse(jsonString: result.stdout, options: JobTests.lenient).alerts
    }

    static func leaderKill(_ receivers: AlertReceivers) async throws {
        try await ReplicaGroup.with(size: 3, start: false) { group in
            var agent = try await startAlertingGroup(group, receivers, agent: "delta")
            @Sendable func alerts(via id: UInt64) async throws -> [Specola_V1_AlertView] { try await Self.alerts(group, via: id) }

            try await agent.stop(SIGKILL)
            try await waitUntil("NodeDown delta on the chat webhook", timeout: .seconds(30), every: .milliseconds(10)) {
                try !receivers.chat("FIRING", node: "delta").isEmpty
            }
            let leader = try await group.waitForLeader()
            try await group.kill(leader)
            let next = try await group.waitForLeader(excluding: [leader], timeout: .seconds(20))
            try await waitUntil("NodeDown delta by e-mail", timeout: .seconds(30), every: .milliseconds(50)) {
                try !receivers.mail("FIRING", node: "delta").isEmpty
            }
            try await waitUntil("both deliveries committed under c\(next)", timeout: .seconds(30)) {
                let notified = try await alerts(via: next).first { $0.labels["node"] == "delta" }?.notifiedAtUnixMs ?? [:]
                return notified["chat"] != nil && notified["mail"] != nil
            }
            let fired = try #require(try await alerts(via: next).first { $0.labels["node"] == "delta" })
            #expect(fired.state == "firing" && fired.transition == 1, "the new leader neither resolved nor re-fired it: \(fired)")

            // The agent returns; the resolve comes from the new leader, which by then has
            // planned many times over the committed book.
            agent = try RaftChaosTests.startAgent("delta", in: group)
            try await waitUntil("the resolve on the chat webhook", timeout: .seconds(60), every: .milliseconds(50)) {
                try !receivers.chat("RESOLVED", node: "delta").isEmpty
            }
            try await waitUntil("the resolve by e-mail", timeout: .seconds(30), every: .milliseconds(50)) {
                try !receivers.mail("RESOLVED", node: "delta").isEmpty
            }
            let chatFiring = try receivers.chat("FIRING", node: "delta")
            let mailFiring = try receivers.mail("FIRING", node: "delta")
            print("leader c\(leader) killed after the first delivery: \(chatFiring.count) chat and \(mailFiring.count) mail message(s) for the firing")
            #expect(Set(chatFiring.map(\.idempotencyKey)).count == 1, "the firing was announced under two keys")
            #expect(Set(mailFiring.map(\.idempotencyKey)).count == 1, "the firing was mailed under two keys")
            #expect(chatFiring.count <= 2 && mailFiring.count <= 2, "at most the one resend the leader change allows")
            #expect(try receivers.chat("RESOLVED", node: "delta").count == 1)
            _ = agent
        }
    }

    /// A planned leadership change (SIGTERM to the leader) while an e-mail is being delivered: the
    /// SMTP server records the message, then takes 1.5 s to answer. The stopping leader waits for
    /// that answer and commits `notified` before it hands leadership off, so the next leader does
    /// not send it again: exactly one e-mail and one chat message.
    @Test func aLeaderStoppedWhileAMailIsBeingDeliveredHandsOffWithoutADuplicate() async throws {
        try await AlertReceivers.with(host: "127.0.4.5", smtpReplyDelayMs: 1_500) { try await Self.gracefulStop($0) }
    }

    static func gracefulStop(_ receivers: AlertReceivers) async throws {
        try await ReplicaGroup.with(size: 3, start: false) { group in
            let agent = try await startAlertingGroup(group, receivers, agent: "echo")

            try await agent.stop(SIGKILL)
            try await waitUntil("NodeDown echo by e-mail, answered only after 1.5 s", timeout: .seconds(30), every: .milliseconds(10)) {
                try !receivers.mail("FIRING", node: "echo").isEmpty
            }
            let leader = try await group.waitForLeader()
            try await group.kill(leader, signal: SIGTERM)
            let exitedByUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
            let log = group.process(leader)!.log
            #expect(log.contains("leadership handed off before shutdown"), "\(log.suffix(2000))")
            let next = try await group.waitForLeader(excluding: [leader], timeout: .seconds(20))
            let notified = try await waitUntilValue("c\(next) to know both were delivered", timeout: .seconds(30)) { () -> [String: Int64]? in
                let notified = try await Self.alerts(group, via: next).first { $0.labels["node"] == "echo" }?.notifiedAtUnixMs ?? [:]
                return notified["chat"] != nil && notified["mail"] != nil ? notified : nil
            }
            // Committed by the stopping leader, so the new one, which plans only on what was
            // committed before it, never sends them: the counts below are final.
            #expect(notified["mail"]! <= exitedByUnixMs && notified["chat"]! <= exitedByUnixMs,
                    "the old leader did not commit both deliveries before it exited: \(notified), exited by \(exitedByUnixMs)")
            let mail = try receivers.mail("FIRING", node: "echo"), chat = try receivers.chat("FIRING", node: "echo")
            #expect(mail.count == 1, "\(mail.count) e-mails for one NodeDown")
            #expect(chat.count == 1, "\(chat.count) chat messages for one NodeDown")
        }
    }
}
