import SpecolaAlerting
import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// A password that prints as `<redacted>`, so it cannot reach a log by string interpolation.
public struct SMTPPassword: Sendable, Hashable, Codable, CustomStringConvertible, CustomDebugStringConvertible {
    let value: String

    public init(_ value: String) { self.value = value }

    public init(from decoder: any Decoder) throws { value = try decoder.singleValueContainer().decode(String.self) }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
}

/// Which SASL mechanism to log in with.
public enum SMTPAuthMechanism: String, Sendable, Hashable, Codable {
    /// PLAIN when the server offers it, else LOGIN.
    case automatic, plain, login
}

/// How to reach and log in to an SMTP server (submission, usually port 587).
public struct SMTPServerConfig: Sendable, Hashable, Codable {
    public var host: String
    public var port: Int
    /// Upgrade with STARTTLS when the server offers it.
    public var startTLS: Bool
    /// Fail rather than send without TLS. Turn off only for a relay on the same host.
    public var requireTLS: Bool
    /// PEM file of the CAs to trust; the system's when nil.
    public var caFile: String?
    /// Log in when set; the password is only ever sent after STARTTLS.
    public var username: String?
    public var password: SMTPPassword?
    public var authMechanism: SMTPAuthMechanism
    /// The name this client gives in EHLO.
    public var localName: String
    /// The limit for one attempt, from connecting to the server's acceptance of the message.
    public var timeoutMs: Int64

    public init(
        host: String, port: Int = 587, startTLS: Bool = true, requireTLS: Bool = true, caFile: String? = nil,
        username: String? = nil, password: SMTPPassword? = nil, authMechanism: SMTPAuthMechanism = .automatic,
        localName: String = "specola.localdomain", timeoutMs: Int64 = 10_000
    ) {
        self.host = host
        self.port = port
        self.startTLS = startTLS
        self.requireTLS = requireTLS
        self.caFile = caFile
        self.username = username
        self.password = password
        self.authMechanism = authMechanism
        self.localName = localName
        self.timeoutMs = timeoutMs
    }
}

/// One SMTP reply: a code and its text lines.
struct SMTPReply: Sendable {
    var code: Int
    var lines: [String]
    var text: String { "\(code) " + lines.joined(separator: " ") }
}

/// The extensions an EHLO reply lists.
struct SMTPExtensions: Sendable {
    /// Upper-cased keyword → its parameters.
    var keywords: [String: [String]] = [:]

    init(_ reply: SMTPReply) {
        for line in reply.lines.dropFirst() {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "=" }).map(String.init)
            guard let keyword = words.first?.uppercased() else { continue }
            keywords[keyword, default: []] += words.dropFirst().map { $0.uppercased() }
        }
    }

    func offers(_ keyword: String) -> Bool { keywords[keyword] != nil }
}

/// The client side of one SMTP session on a NIO channel, step by step: a reply is awaited
/// after each command and any unexpected one ends the session with an error naming the step.
struct SMTPSession {
    private var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private var pending: [UInt8] = []
    /// `smtp host:port`, for messages.
    let peer: String

    init(inbound: NIOAsyncChannelInboundStream<ByteBuffer>, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>, peer: String) {
        self.inbound = inbound.makeAsyncIterator()
        self.outbound = outbound
        self.peer = peer
    }

    /// Reads one line without its line end.
    private mutating func line() async throws -> String {
        while true {
            if let end = pending.firstIndex(of: UInt8(ascii: "\n")) {
                var line = Array(pending[..<end])
                pending.removeFirst(end + 1)
                if line.last == UInt8(ascii: "\r") { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            guard pending.count < 65_536 else {
                throw DeliveryError(.protocolViolation, "\(peer) sent a line longer than 64 KiB", retryable: false)
            }
            guard let chunk = try await inbound.next() else { throw ChannelError.eof }
            pending += chunk.readableBytesView
        }
    }

    /// Reads a reply, joining `250-…` continuation lines up to the final `250 …`.
    mutating func reply() async throws -> SMTPReply {
        var lines: [String] = []
        while true {
            let text = try await line()
            let bytes = Array(text.utf8)
            guard bytes.count >= 3, let code = Int(String(decoding: bytes[0..<3], as: UTF8.self)) else {
                throw DeliveryError(.protocolViolation, "\(peer) sent '\(text.prefix(80))', not an SMTP reply", retryable: true)
            }
            lines.append(bytes.count > 4 ? String(decoding: bytes[4...], as: UTF8.self) : "")
            if bytes.count == 3 || bytes[3] != UInt8(ascii: "-") { return SMTPReply(code: code, lines: lines) }
        }
    }

    func send(_ text: String) async throws {
        try await outbound.write(ByteBuffer(string: text))
    }

    /// Sends `command` (when given) and requires a reply with one of `expected`. `step` names the
    /// step in errors instead of the command, which for AUTH carries the credentials.
    @discardableResult
    mutating func step(_ command: String?, expect expected: Set<Int>, step: String) async throws -> SMTPReply {
        if let command { try await send(command + "\r\n") }
        let answer = try await reply()
        guard expected.contains(answer.code) else {
            throw DeliveryError(
                .smtpReply, "\(peer) refused \(step): \(answer.text)", retryable: (400..<500).contains(answer.code))
        }
        return answer
    }
}

/// Sends e-mail over SMTP with STARTTLS and AUTH PLAIN or LOGIN, on SwiftNIO.
enum SMTPClient {
    static func send(
        _ message: EmailMessage, envelopeFrom: String, recipients: [String], server: SMTPServerConfig, tls: NIOSSLContext,
        group: any EventLoopGroup
    ) async throws {
        let peer = "smtp \(server.host):\(server.port)"
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(.milliseconds(server.timeoutMs))
            .connect(host: server.host, port: server.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        try await channel.executeThenClose { inbound, outbound in
            var session = SMTPSession(inbound: inbound, outbound: outbound, peer: peer)
            try await session.step(nil, expect: [220], step: "the connection")
            var extensions = SMTPExtensions(try await session.step("EHLO \(server.localName)", expect: [250], step: "EHLO"))
            let secured = server.startTLS && extensions.offers("STARTTLS")
            if secured {
                try await session.step("STARTTLS", expect: [220], step: "STARTTLS")
                try await startTLS(on: channel.channel, context: tls, serverName: tlsServerName(server.host))
                do {
                    extensions = SMTPExtensions(try await session.step("EHLO \(server.localName)", expect: [250], step: "EHLO after STARTTLS"))
                } catch {
                    // A refused handshake can surface as the connection closing before NIOSSL's error does.
                    let problem = deliveryError(error, peer: peer)
                    guard problem.code == .protocolViolation else { throw problem }
                    throw DeliveryError(
                        .tls, "\(peer): TLS handshake failed: the connection closed during it; check that the CA file trusts "
                            + "the server's certificate and that the certificate names the configured host", retryable: false)
                }
            } else if server.requireTLS {
                throw DeliveryError(
                    .configuration, "\(peer) does not offer STARTTLS and requireTLS is set; enable STARTTLS on the server, "
                        + "or set requireTLS: false only for a relay on this host", retryable: false)
            }
            if let username = server.username {
                guard secured else {
                    throw DeliveryError(
                        .configuration, "\(peer): will not send the password of \(username) unencrypted; the server offers no STARTTLS",
                        retryable: false)
                }
                try await authenticate(&session, extensions, username: username, password: server.password?.value ?? "", server: server)
            }
            let (data, needs8bit) = message.rendered(allow8bit: extensions.offers("8BITMIME"))
            try await session.step("MAIL FROM:<\(envelopeFrom)>" + (needs8bit ? " BODY=8BITMIME" : ""), expect: [250], step: "MAIL FROM")
            for recipient in recipients {
                try await session.step("RCPT TO:<\(recipient)>", expect: [250, 251], step: "RCPT TO <\(recipient)>")
            }
            try await session.step("DATA", expect: [354], step: "DATA")
            try await session.send(data + ".\r\n")
            try await session.step(nil, expect: [250], step: "the message")
            // The message is accepted; a failed goodbye changes nothing.
            _ = try? await session.step("QUIT", expect: [221], step: "QUIT")
        }
    }

    /// Puts TLS under the open session, as STARTTLS requires; the handshake runs before the next write leaves.
    private static func startTLS(on channel: any Channel, context: NIOSSLContext, serverName: String?) async throws {
        try await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.addHandler(
                NIOSSLClientHandler(context: context, serverHostname: serverName), position: .first)
        }.get()
    }

    private static func authenticate(
        _ session: inout SMTPSession, _ extensions: SMTPExtensions, username: String, password: String, server: SMTPServerConfig
    ) async throws {
        let offered = extensions.keywords["AUTH"] ?? []
        let mechanism: SMTPAuthMechanism
        switch server.authMechanism {
        case .automatic where offered.contains("PLAIN"): mechanism = .plain
        case .automatic where offered.contains("LOGIN"): mechanism = .login
        case .automatic:
            let list = offered.isEmpty ? "no AUTH at all" : "AUTH \(offered.joined(separator: " "))"
            throw DeliveryError(
                .configuration, "\(session.peer) offers \(list); specola logs in with PLAIN or LOGIN", retryable: false)
        case .plain, .login: mechanism = server.authMechanism
        }
        let base64 = { (text: String) in Data(text.utf8).base64EncodedString() }
        switch mechanism {
        case .plain:
            try await session.step("AUTH PLAIN " + base64("\0\(username)\0\(password)"), expect: [235], step: "AUTH")
        default:
            try await session.step("AUTH LOGIN", expect: [334], step: "AUTH")
            try await session.step(base64(username), expect: [334], step: "AUTH")
            try await session.step(base64(password), expect: [235], step: "AUTH")
        }
    }
}
