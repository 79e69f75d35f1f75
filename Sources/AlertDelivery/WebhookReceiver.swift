import SpecolaAlerting
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A configured chat or Alertmanager-style webhook.
public struct WebhookReceiverConfig: Sendable, Hashable, Codable {
    /// The name routes refer to.
    public var name: String
    /// Secret for chat services: it is never logged, and errors name only its host.
    public var url: String
    public var format: WebhookFormat
    /// Mattermost's display name and icon for the message.
    public var identity: WebhookPayload.ChatIdentity
    /// This cluster's address for links back (Alertmanager's `externalURL`); empty for none.
    public var externalURL: String
    /// The most alerts one Alertmanager message lists (0: all); the rest are counted in `truncatedAlerts`.
    public var maxAlerts: Int
    /// The limit for one attempt: connect, send and the complete answer.
    public var timeoutMs: Int64
    /// PEM file of the CAs to trust for https; the system's when nil.
    public var caFile: String?

    public init(
        name: String, url: String, format: WebhookFormat, identity: WebhookPayload.ChatIdentity = .init(),
        externalURL: String = "", maxAlerts: Int = 0, timeoutMs: Int64 = 5_000, caFile: String? = nil
    ) {
        self.name = name
        self.url = url
        self.format = format
        self.identity = identity
        self.externalURL = externalURL
        self.maxAlerts = maxAlerts
        self.timeoutMs = timeoutMs
        self.caFile = caFile
    }
}

/// Posts notifications as JSON with an `Idempotency-Key` header.
public struct WebhookReceiver: Receiver {
    public let config: WebhookReceiverConfig
    private let endpoint: WebhookEndpoint
    private let tls: NIOSSLContext?
    private let group: any EventLoopGroup

    public var name: String { config.name }

    /// Fails at once for a URL that is not http(s) or a CA file that does not load.
    public init(_ config: WebhookReceiverConfig, eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton)
        throws(DeliveryError)
    {
        self.config = config
        endpoint = try WebhookEndpoint(url: config.url, receiver: config.name)
        tls = endpoint.useTLS ? try makeClientTLSContext(caFile: config.caFile, purpose: "webhook receiver \(config.name)") : nil
        group = eventLoopGroup
    }

    public func send(_ notification: AlertNotification) async throws {
        let body = WebhookPayload.body(
            for: notification, format: config.format, identity: config.identity, externalURL: config.externalURL,
            maxAlerts: config.maxAlerts)
        let headers = [
            ("Content-Type", "application/json"), ("Idempotency-Key", notification.idempotencyKey),
            ("User-Agent", "specola-alerting"),
        ]
        let peer = "webhook \(name) (\(endpoint))"
        let timeout = Duration.milliseconds(config.timeoutMs)
        let reply: HTTPReply
        do {
            reply = try await withDeadline(
                timeout, timeoutError: { DeliveryError(.timeout, "\(peer) did not answer within \(timeout)", retryable: true) }
            ) { [endpoint, tls, group] in
                try await HTTPPost.send(body, to: endpoint, headers: headers, tls: tls, connectTimeout: timeout, group: group)
            }
        } catch {
            throw deliveryError(error, peer: peer)
        }
        try Self.check(reply, peer: peer)
    }

    /// 2xx is delivered. 408, 429 and 5xx may pass on a retry; any other status will not.
    static func check(_ reply: HTTPReply, peer: String) throws(DeliveryError) {
        let code = Int(reply.status.code)
        guard !(200..<300).contains(code) else { return }
        let retryable = code == 408 || code == 429 || code >= 500
        let answer = reply.bodyPrefix.prefix(200).replacingOccurrences(of: "\n", with: " ")
        var message = "\(peer) answered \(code) \(reply.status.reasonPhrase)"
        if !answer.isEmpty { message += ": \(answer)" }
        if !retryable { message += "; not retried, check the receiver's URL and payload format" }
        let retryAfter = reply.headers.first(name: "Retry-After").flatMap(Int64.init).map { Duration.seconds($0) }
        throw DeliveryError(.httpStatus, message, retryable: retryable, retryAfter: retryAfter)
    }
}
