import SpecolaAlerting
import NIOCore
import NIOPosix
import NIOSSL

/// A configured e-mail receiver: who sends, who gets it, and through which server.
public struct EmailReceiverConfig: Sendable, Hashable, Codable {
    /// The name routes refer to.
    public var name: String
    /// `alerts@example.org` or `Specola <alerts@example.org>`.
    public var from: String
    public var to: [String]
    public var smtp: SMTPServerConfig
    /// This cluster's address, printed in the body; empty for none.
    public var externalURL: String

    public init(name: String, from: String, to: [String], smtp: SMTPServerConfig, externalURL: String = "") {
        self.name = name
        self.from = from
        self.to = to
        self.smtp = smtp
        self.externalURL = externalURL
    }
}

/// Sends each notification as one plain-text e-mail. Its Message-ID comes from the idempotency
/// key, so a copy re-sent after a leader change is recognisably the same message.
public struct EmailReceiver: Receiver {
    public let config: EmailReceiverConfig
    private let envelopeFrom: String
    private let tls: NIOSSLContext
    private let group: any EventLoopGroup

    public var name: String { config.name }

    /// Fails at once for malformed addresses or a CA file that does not load.
    public init(_ config: EmailReceiverConfig, eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton)
        throws(DeliveryError)
    {
        let place = "e-mail receiver \(config.name)"
        let from = Self.address(in: config.from)
        for address in [from] + config.to where !Self.isPlainAddress(address) {
            throw DeliveryError(.configuration, "\(place): '\(address)' is not an e-mail address like ops@example.org", retryable: false)
        }
        guard !config.to.isEmpty else { throw DeliveryError(.configuration, "\(place): no recipients in 'to'", retryable: false) }
        self.config = config
        envelopeFrom = from
        tls = try makeClientTLSContext(caFile: config.smtp.caFile, purpose: place)
        group = eventLoopGroup
    }

    public func send(_ notification: AlertNotification) async throws {
        let domain = envelopeFrom.split(separator: "@").last.map(String.init) ?? "specola"
        let message = EmailMessage(
            from: config.from, to: config.to, subject: notification.title,
            body: NotificationText.render(notification, externalURL: config.externalURL, markdown: false),
            messageID: "\(notification.idempotencyKey)@\(domain)", dateUnixMs: wallClockUnixMs(),
            extraHeaders: [("X-Specola-Idempotency-Key", notification.idempotencyKey)])
        let server = config.smtp
        let peer = "smtp \(server.host):\(server.port)"
        let timeout = Duration.milliseconds(server.timeoutMs)
        do {
            try await withDeadline(
                timeout, timeoutError: { DeliveryError(.timeout, "\(peer) did not accept the message within \(timeout)", retryable: true) }
            ) { [envelopeFrom, config, tls, group] in
                try await SMTPClient.send(
                    message, envelopeFrom: envelopeFrom, recipients: config.to, server: server, tls: tls, group: group)
            }
        } catch {
            throw deliveryError(error, peer: peer)
        }
    }

    /// The address inside `Name <address>`, or the whole text.
    static func address(in text: String) -> String {
        guard let open = text.lastIndex(of: "<"), let close = text.lastIndex(of: ">"), open < close else { return text }
        return String(text[text.index(after: open)..<close])
    }

    /// One `@`, no spaces, brackets or line breaks: what may go between `<` and `>` in MAIL FROM and RCPT TO.
    static func isPlainAddress(_ address: String) -> Bool {
        address.filter { $0 == "@" }.count == 1 && !address.hasPrefix("@") && !address.hasSuffix("@")
            && !address.contains { $0.isWhitespace || $0 == "<" || $0 == ">" || $0.isNewline }
    }
}
