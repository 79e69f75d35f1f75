import Foundation
import Testing
import TestSupport

@testable import SpecolaAlerting
@testable import SpecolaAlertDelivery
import CooperativePoolWatch

/// One request as Tests/Fixtures/alerting/webhook_receiver.py recorded it.
struct RecordedRequest: Decodable {
    var n: Int
    var path: String
    var headers: [String: String]
    var body: String
    var answered: Int

    func header(_ name: String) -> String? { headers.first { $0.key.lowercased() == name.lowercased() }?.value }
    func json<T: Decodable>(_ type: T.Type) throws -> T { try JSONDecoder().decode(T.self, from: Data(body.utf8)) }
}

/// Alertmanager's webhook message, version 4, as a consumer reads it.
struct AlertmanagerV4: Decodable {
    struct Alert: Decodable {
        var status: String
        var labels: [String: String]
        var annotations: [String: String]
        var startsAt: String
        var endsAt: String
        var generatorURL: String
        var fingerprint: String
    }
    var version: String
    var groupKey: String
    var truncatedAlerts: Int
    var status: String
    var receiver: String
    var groupLabels: [String: String]
    var commonLabels: [String: String]
    var commonAnnotations: [String: String]
    var externalURL: String
    var alerts: [Alert]
}

struct ChatBody: Decodable {
    var text: String
    var username: String?
    var icon_url: String?
}

/// Webhook delivery against a real HTTP server on loopback (Python's http.server).
@Suite(.watchesCooperativePool) struct WebhookReceiverTests {
    static let host = "127.0.3.1"
    static let secretPath = "/hooks/T0001/B0002/not-for-logs"
    let fast = DeliveryRetryPolicy(attempts: 4, initialBackoffMs: 20, maxBackoffMs: 100, jitter: 0.2)

    /// Starts the receiver with `options`, runs `body` and stops it.
    func withReceiver<T>(_ options: [String] = [], _ body: (FixtureServer) async throws -> T) async throws -> T {
        try await withTemporaryDirectory { directory in
            let server = try await FixtureServer.start(
                "webhook_receiver", python: Python.any, host: Self.host, arguments: options, directory: directory)
            return try await using(server, body)
        }
    }

    func receiver(_ server: FixtureServer, _ format: WebhookFormat, timeoutMs: Int64 = 5_000) throws -> WebhookReceiver {
        try WebhookReceiver(WebhookReceiverConfig(
            name: Scenario.chat, url: "http://\(server.host):\(server.port)\(Self.secretPath)", format: format,
            identity: .init(username: "specola", iconURL: "https://specola.example/icon.png"),
            externalURL: "https://specola.example", timeoutMs: timeoutMs))
    }

    @Test func slackGetsReadableTextAndEveryRequestCarriesTheIdempotencyKey() async throws {
        try await withReceiver { server in
            let notification = Scenario.notification()
            // A generous timeout: on a loaded machine a slow answer would be retried, and this test counts requests.
            let outcome = await deliver(notification, via: try receiver(server, .slack, timeoutMs: 60_000), policy: fast, logger: Scenario.logger)
            #expect(outcome.isDelivered, "\(outcome.error.map(String.init(describing:)) ?? "")")
            let requests = try server.records(RecordedRequest.self)
            #expect(requests.count == 1)
            let request = try #require(requests.first)
            #expect(request.path == Self.secretPath)
            #expect(request.header("Idempotency-Key") == notification.idempotencyKey)
            #expect(request.header("Content-Type") == "application/json")
            let object = try JSONSerialization.jsonObject(with: Data(request.body.utf8)) as? [String: Any]
            #expect(object?.keys.sorted() == ["text"], "Slack's shape is {\"text\": ...} only")
            let text = try request.json(ChatBody.self).text
            #expect(text.hasPrefix("*[FIRING:1] alertname=NodeDown*"))
            #expect(text.contains("[CRITICAL] NodeDown: node n3 is down"))
            #expect(text.contains("no heartbeat for 12 s"))
            #expect(text.contains("specola alert ack \(BuiltinAlert.nodeDown(node: "n3", reason: "").fingerprint)"))
        }
    }

    @Test func mattermostGetsTheTextWithUsernameAndIcon() async throws {
        try await withReceiver { server in
            let outcome = await deliver(Scenario.notification(), via: try receiver(server, .mattermost), policy: fast, logger: Scenario.logger)
            #expect(outcome.isDelivered)
            let body = try #require(try server.records(RecordedRequest.self).first).json(ChatBody.self)
            #expect(body.username == "specola" && body.icon_url == "https://specola.example/icon.png")
            #expect(body.text.contains("node n3 is down"))
        }
    }

    @Test func alertmanagerV4PayloadForAFiringAndThenAResolvedGroup() async throws {
        try await withReceiver { server in
            var book = AlertBook()
            let planner = NotificationPlanner(routing: AlertRouting(routes: [NotificationRoute(receiver: Scenario.chat)]))
            let n3 = BuiltinAlert.nodeDown(node: "n3", reason: "no heartbeat for 12 s")
            let n4 = BuiltinAlert.nodeDown(node: "n4", reason: "no heartbeat for 15 s")
            book.apply(n3.fire(atUnixMs: 1_763_632_800_000))
            book.apply(n4.fire(atUnixMs: 1_763_632_800_250))
            let webhook = try receiver(server, .alertmanager)
            let firing = try #require(planner.plan(book, atUnixMs: 1_763_632_800_250).notifications.first)
            let delivered = await deliver(firing, via: webhook, policy: fast, logger: Scenario.logger, now: { 1_763_632_800_300 })
            for change in delivered.changesToCommit { book.apply(change) }
            book.apply(n3.resolve(atUnixMs: 1_763_632_900_000))
            let resolved = try #require(planner.plan(book, atUnixMs: 1_763_632_900_000).notifications.first)
            #expect(await deliver(resolved, via: webhook, policy: fast, logger: Scenario.logger).isDelivered)

            let requests = try server.records(RecordedRequest.self)
            try #require(requests.count == 2)
            let first = try requests[0].json(AlertmanagerV4.self)
            #expect(first.version == "4" && first.status == "firing" && first.receiver == Scenario.chat)
            #expect(first.groupKey == firing.groupKey && first.truncatedAlerts == 0)
            #expect(first.groupLabels == ["alertname": "NodeDown"])
            #expect(first.commonLabels == ["alertname": "NodeDown", "severity": "critical"])
            #expect(first.commonAnnotations == [:], "the summaries differ")
            #expect(first.externalURL == "https://specola.example")
            #expect(first.alerts.map(\.labels["node"]) == ["n3", "n4"])
            let alert = try #require(first.alerts.first)
            #expect(alert.status == "firing" && alert.fingerprint == n3.fingerprint)
            #expect(alert.startsAt == "2025-11-20T10:00:00.000Z" && alert.endsAt == "0001-01-01T00:00:00Z")
            #expect(alert.annotations == ["summary": "node n3 is down", "description": "no heartbeat for 12 s"])
            #expect(alert.generatorURL == "https://specola.example/alerts/\(n3.fingerprint)")

            let second = try requests[1].json(AlertmanagerV4.self)
            #expect(second.status == "resolved")
            #expect(second.alerts.map(\.endsAt) == ["2025-11-20T10:01:40.000Z"])
            #expect(requests[0].header("Idempotency-Key") != requests[1].header("Idempotency-Key"))
        }
    }

    @Test func serverErrorsAreRetriedWithTheSameKeyUntilAccepted() async throws {
        try await withReceiver(["--fail-first", "2", "--fail-status", "500"]) { server in
            let notification = Scenario.notification()
            let outcome = await deliver(notification, via: try receiver(server, .slack), policy: fast, logger: Scenario.logger)
            // On a loaded machine an answer can outlast the client's timeout and be retried once more.
            #expect(outcome.isDelivered && outcome.attempts >= 3)
            let requests = try server.records(RecordedRequest.self)
            #expect(Array(requests.map(\.answered).prefix(3)) == [500, 500, 200])
            #expect(Set(requests.compactMap { $0.header("Idempotency-Key") }) == [notification.idempotencyKey])
        }
    }

    @Test func tooManyRequestsIsRetriedToo() async throws {
        try await withReceiver(["--fail-first", "1", "--fail-status", "429"]) { server in
            let outcome = await deliver(Scenario.notification(), via: try receiver(server, .slack), policy: fast, logger: Scenario.logger)
            #expect(outcome.isDelivered && outcome.attempts == 2)
        }
    }

    @Test func aBadRequestIsNotRetriedAndTheErrorNamesTheReceiverButNotTheSecretPath() async throws {
        try await withReceiver(["--fail-first", "9", "--fail-status", "400"]) { server in
            let outcome = await deliver(Scenario.notification(), via: try receiver(server, .slack), policy: fast, logger: Scenario.logger)
            #expect(!outcome.isDelivered && outcome.attempts == 1)
            let error = try #require(outcome.error)
            #expect(error.code == .httpStatus && !error.isRetryable)
            #expect(error.message.contains("webhook chat (http://\(server.host):\(server.port)) answered 400"))
            #expect(!error.message.contains("not-for-logs"))
            #expect(try server.records(RecordedRequest.self).count == 1, "deliver returned: no retry can still be on its way")
        }
    }

    @Test func aSlowAnswerTimesOutAndTheRetrySucceeds() async throws {
        try await withReceiver(["--slow-first", "1", "--slow-ms", "10000"]) { server in
            // A generous timeout: the prompt second answer must fit in it even on a loaded machine.
            let outcome = await deliver(
                Scenario.notification(), via: try receiver(server, .slack, timeoutMs: 2000), policy: fast, logger: Scenario.logger)
            #expect(outcome.isDelivered && outcome.attempts == 2, "the first attempt was cut at its 2 s timeout, not answered after 10 s")
            #expect(try server.records(RecordedRequest.self).count == 2)
        }
    }

    @Test func nobodyListeningIsAConnectErrorThatIsRetried() async throws {
        let port = freePort(host: Self.host)
        let webhook = try WebhookReceiver(WebhookReceiverConfig(
            name: Scenario.chat, url: "http://\(Self.host):\(port)/hook", format: .slack, timeoutMs: 2_000))
        let outcome = await deliver(Scenario.notification(), via: webhook, policy: fast, logger: Scenario.logger)
        #expect(!outcome.isDelivered && outcome.attempts == 4)
        #expect(outcome.error?.code == .connect && outcome.error?.message.contains("cannot connect") == true)
    }

    @Test func aURLThatIsNotHTTPIsRejectedAtConfiguration() {
        #expect(throws: DeliveryError.self) {
            try WebhookReceiver(WebhookReceiverConfig(name: "chat", url: "ftp://example.org/x", format: .slack))
        }
    }
}
