import Foundation
import Testing
import TestSupport

@testable import SpecolaAlerting
@testable import SpecolaAlertDelivery
import CooperativePoolWatch

/// One line of Tests/Fixtures/alerting/smtp_server.py's log: a message or an AUTH attempt.
struct SMTPRecord: Decodable {
    var event: String
    var tls: Bool
    var mail_from: String?
    var rcpt_tos: [String]?
    var mail_options: [String]?
    var data: String?
    var authenticated: Bool?
    var mechanism: String?
    var success: Bool?
}

/// E-mail delivery against aiosmtpd on loopback, with STARTTLS on a certificate made here by openssl.
@Suite(.watchesCooperativePool) struct EmailReceiverTests {
    static let host = "127.0.3.2"
    static let user = "alerts"
    static let password = "pw-7Qx!not-in-logs"
    let once = DeliveryRetryPolicy(attempts: 2, initialBackoffMs: 20, maxBackoffMs: 50)

    /// A self-signed certificate for the server's loopback address; returns (cert, key) paths.
    static func certificate(in directory: TempDir, name: String) async throws -> (String, String) {
        try await selfSignedCertificate(in: directory, name: name, host: host)
    }

    /// Starts aiosmtpd with a certificate (STARTTLS, required) and credentials unless `plain`,
    /// then runs `body` with the server and the CA file to trust.
    func withServer<T>(plain: Bool = false, _ body: (FixtureServer, String, TempDir) async throws -> T) async throws -> T {
        let python = try await Python.withAiosmtpd()
        return try await withTemporaryDirectory { directory in
            let (cert, key) = try await Self.certificate(in: directory, name: "server")
            let options =
                plain ? [] : ["--cert", cert, "--key", key, "--require-tls", "--user", Self.user, "--password", Self.password]
            let server = try await FixtureServer.start("smtp_server", python: python, host: Self.host, arguments: options, directory: directory)
            return try await using(server) { try await body($0, cert, directory) }
        }
    }

    func receiver(
        _ server: FixtureServer, caFile: String?, password: String = password, mechanism: SMTPAuthMechanism = .automatic,
        login: Bool = true
    ) throws -> EmailReceiver {
        try EmailReceiver(EmailReceiverConfig(
            name: Scenario.mail, from: "Specola <alerts@example.org>", to: ["ops@example.org", "oncall@example.org"],
            smtp: SMTPServerConfig(
                host: server.host, port: server.port, caFile: caFile, username: login ? Self.user : nil,
                password: login ? SMTPPassword(password) : nil, authMechanism: mechanism, timeoutMs: 5_000),
            externalURL: "https://specola.example"))
    }

    /// A notification whose description has a line starting with a dot and a non-ASCII character.
    var notification: AlertNotification {
        Scenario.notification(
            .sensorCritical(node: "n3", sensor: "CPU Temp", reading: "97 °C\n.then the fans stopped"), receiver: Scenario.mail)
    }

    @Test func aMessageGoesOverSTARTTLSWithAuthPlainAndArrivesIntact() async throws {
        try await withServer { server, ca, _ in
            let notification = self.notification
            let outcome = await deliver(notification, via: try receiver(server, caFile: ca), policy: once, logger: Scenario.logger)
            #expect(outcome.isDelivered, "\(outcome.error.map(String.init(describing:)) ?? "")")
            let records = try server.records(SMTPRecord.self)
            let auth = try #require(records.first { $0.event == "auth" })
            #expect(auth.mechanism == "PLAIN" && auth.success == true && auth.tls, "AUTH happened inside TLS")
            let message = try #require(records.first { $0.event == "message" })
            #expect(message.tls && message.authenticated == true)
            #expect(message.mail_from == "alerts@example.org")
            #expect(message.rcpt_tos == ["ops@example.org", "oncall@example.org"])
            #expect(message.mail_options?.contains("BODY=8BITMIME") == true, "non-ASCII body sent as 8BITMIME")
            let data = try #require(message.data)
            #expect(data.contains("Message-ID: <\(notification.idempotencyKey)@example.org>"))
            #expect(data.contains("Subject: [FIRING:1] alertname=SensorCritical"))
            #expect(data.contains("From: Specola <alerts@example.org>"))
            #expect(data.contains("reading: 97 °C"))
            #expect(data.contains("\r\n.then the fans stopped"), "the server un-stuffs the dot line to its original")
            #expect(!data.contains("..then"))
        }
    }

    @Test func authLoginWorksWhenChosen() async throws {
        try await withServer { server, ca, _ in
            let outcome = await deliver(
                notification, via: try receiver(server, caFile: ca, mechanism: .login), policy: once, logger: Scenario.logger)
            #expect(outcome.isDelivered)
            let auth = try #require(try server.records(SMTPRecord.self).first { $0.event == "auth" })
            #expect(auth.mechanism == "LOGIN" && auth.success == true)
        }
    }

    @Test func aWrongPasswordIsAClearErrorNamingServerAndReplyAndIsNotRetried() async throws {
        try await withServer { server, ca, _ in
            let outcome = await deliver(
                notification, via: try receiver(server, caFile: ca, password: "wrong"), policy: once, logger: Scenario.logger)
            let error = try #require(outcome.error)
            #expect(error.message.hasPrefix("smtp \(Self.host):\(server.port) refused AUTH: 535"), "\(error)")
            #expect(!error.message.contains("wrong") && !error.message.contains(Self.password))
            #expect(error.code == .smtpReply && !error.isRetryable && outcome.attempts == 1)
            let records = try server.records(SMTPRecord.self)
            #expect(records.contains { $0.event == "auth" && $0.success == false })
            #expect(!records.contains { $0.event == "message" })
        }
    }

    @Test func anUntrustedCertificateFailsTheHandshakeAndNothingIsSent() async throws {
        try await withServer { server, _, directory in
            let (otherCA, _) = try await Self.certificate(in: directory, name: "other")
            let outcome = await deliver(notification, via: try receiver(server, caFile: otherCA), policy: once, logger: Scenario.logger)
            let error = try #require(outcome.error)
            #expect(error.code == .tls, "\(error)")
            #expect(error.message.contains("smtp \(Self.host):\(server.port)") && error.message.contains("CA file"))
            #expect(try server.records(SMTPRecord.self).isEmpty, "no AUTH and no message without trusted TLS")
        }
    }

    @Test func aServerWithoutSTARTTLSIsRefusedWhenTLSIsRequired() async throws {
        try await withServer(plain: true) { server, ca, _ in
            let outcome = await deliver(
                notification, via: try receiver(server, caFile: ca, login: false), policy: once, logger: Scenario.logger)
            let error = try #require(outcome.error)
            #expect(error.code == .configuration && error.message.contains("does not offer STARTTLS"), "\(error)")
            #expect(try server.records(SMTPRecord.self).isEmpty)
        }
    }

    @Test func malformedAddressesAreRejectedAtConfiguration() {
        let smtp = SMTPServerConfig(host: Self.host)
        #expect(throws: DeliveryError.self) {
            try EmailReceiver(EmailReceiverConfig(name: "mail", from: "alerts@example.org", to: ["ops@x\r\nRCPT TO:<evil@x>"], smtp: smtp))
        }
        #expect(throws: DeliveryError.self) { try EmailReceiver(EmailReceiverConfig(name: "mail", from: "nobody", to: ["a@b"], smtp: smtp)) }
        #expect("\(SMTPPassword("hunter2"))" == "<redacted>")
    }
}
