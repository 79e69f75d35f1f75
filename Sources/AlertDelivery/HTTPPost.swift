import SpecolaAlerting
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Where a webhook lives, parsed once from its URL. Its `description` leaves out the path,
/// which for chat webhooks is the secret.
struct WebhookEndpoint: Sendable, Hashable, CustomStringConvertible {
    var useTLS: Bool
    var host: String
    var port: Int
    /// Path and query, sent in the request line.
    var target: String

    init(url: String, receiver: String) throws(DeliveryError) {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty
        else {
            throw DeliveryError(
                .configuration, "webhook receiver \(receiver): the url is not an http(s) URL; write e.g. https://chat.example.org/hooks/…",
                retryable: false)
        }
        useTLS = scheme == "https"
        self.host = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        port = components.port ?? (useTLS ? 443 : 80)
        let path = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
        target = components.percentEncodedQuery.map { "\(path)?\($0)" } ?? path
    }

    var description: String { "\(useTLS ? "https" : "http")://\(host):\(port)" }

    var hostHeader: String { port == (useTLS ? 443 : 80) ? host : "\(host):\(port)" }
}

/// A webhook's answer.
struct HTTPReply: Sendable {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    /// The start of the body, for error messages.
    var bodyPrefix: String
}

/// One HTTP/1.1 POST on a connection of its own (notifications are rare; no pool to go stale).
enum HTTPPost {
    static let bodyLimit = 4096

    static func send(
        _ body: [UInt8], to endpoint: WebhookEndpoint, headers extraHeaders: [(String, String)], tls: NIOSSLContext?,
        connectTimeout: Duration, group: any EventLoopGroup
    ) async throws -> HTTPReply {
        var headers = HTTPHeaders(extraHeaders)
        headers.replaceOrAdd(name: "Host", value: endpoint.hostHeader)
        headers.replaceOrAdd(name: "Content-Length", value: "\(body.count)")
        headers.replaceOrAdd(name: "Connection", value: "close")
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: endpoint.target, headers: headers)
        let serverName = tlsServerName(endpoint.host)
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(.milliseconds(connectTimeout.milliseconds))
            .connect(host: endpoint.host, port: endpoint.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(.head(head))
            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body))))
            try await outbound.write(.end(nil))
            var responseHead: HTTPResponseHead?
            var responseBody = ByteBuffer()
            for try await part in inbound {
                switch part {
                case .head(let received):
                    responseHead = received
                case .body(var chunk):
                    if responseBody.readableBytes < bodyLimit { responseBody.writeBuffer(&chunk) }
                case .end:
                    guard let responseHead else { break }
                    let text = responseBody.readString(length: min(bodyLimit, responseBody.readableBytes)) ?? ""
                    return HTTPReply(status: responseHead.status, headers: responseHead.headers, bodyPrefix: text)
                }
            }
            throw ChannelError.eof
        }
    }
}
