import SpecolaClusterCore
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import SpecolaProtocol

/// Plain-HTTP listener for `/metrics`, `/healthz` and `/readyz`, on its own
/// port (loopback unless configured otherwise).
struct MetricsServer: Sendable {
    let endpoint: HostPort
    let replica: Replica
    let tls: TLSFiles
    let logger: Logger

    /// Binds and serves until cancelled; `onBound` gets the bound port (useful with port 0).
    func run(onBound: @Sendable (Int) -> Void = { _ in }) async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: endpoint.host, port: endpoint.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(
                        wrappingChannelSynchronously: channel)
                }
            }
        onBound(server.channel.localAddress?.port ?? endpoint.port)
        logger.info("metrics listening", metadata: ["metrics.address": "\(endpoint)"])
        try await withThrowingDiscardingTaskGroup { group in
            try await server.executeThenClose { connections in
                for try await connection in connections {
                    group.addTask {
                        do {
                            try await serve(connection)
                        } catch {
                            logger.debug("metrics connection ended", metadata: ["error": "\(error)"])
                        }
                    }
                }
            }
        }
    }

    private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async throws {
        try await connection.executeThenClose { inbound, outbound in
            var head: HTTPRequestHead?
            for try await part in inbound {
                switch part {
                case .head(let requestHead): head = requestHead
                case .body: break
                case .end:
                    guard let request = head else { return }
                    let (status, body, type) = await respond(to: request)
                    var headers = HTTPHeaders()
                    headers.add(name: "Content-Type", value: type)
                    headers.add(name: "Content-Length", value: String(body.utf8.count))
                    headers.add(name: "Connection", value: request.isKeepAlive ? "keep-alive" : "close")
                    try await outbound.write(.head(HTTPResponseHead(version: request.version, status: status, headers: headers)))
                    try await outbound.write(.body(.byteBuffer(ByteBuffer(string: body))))
                    try await outbound.write(.end(nil))
                    if !request.isKeepAlive { return }
                    head = nil
                }
            }
        }
    }

    private func respond(to request: HTTPRequestHead) async -> (HTTPResponseStatus, String, String) {
        let path = request.uri.split(separator: "?").first.map(String.init) ?? request.uri
        switch path {
        case "/metrics":
            let nodes = await replica.allNodes()
            var text = MetricsRenderer.render(nodes: nodes)
            text += MetricsRenderer.renderRaft(
                isLeader: await replica.isLeader, term: await replica.term,
                commit: await replica.commitIndex, applied: await replica.appliedIndex)
            text += MetricsRenderer.renderCertificates(Self.certificates(tls), nowUnixSeconds: Date().timeIntervalSince1970)
            return (.ok, text, "text/plain; version=0.0.4; charset=utf-8")
        case "/healthz":
            return (.ok, "ok\n", "text/plain")
        case "/readyz":
            // Ready once a leader is known: writes can be served (here or by redirect).
            if await replica.leaderID != nil { return (.ok, "ready\n", "text/plain") }
            return (.serviceUnavailable, "no Raft leader known yet\n", "text/plain")
        default:
            return (.notFound, "not found; try /metrics, /healthz or /readyz\n", "text/plain")
        }
    }

    /// What the files hold now; a file that does not read is left out (start-up validated them).
    static func certificates(_ tls: TLSFiles) -> [MetricsRenderer.CertificateExpiry] {
        var result: [MetricsRenderer.CertificateExpiry] = []
        for ca in (try? CertificateBundle.load(path: tls.ca)) ?? [] {
            result.append(.init(kind: "ca", path: tls.ca, subject: "\(ca.subject)", notValidAfterUnixSeconds: ca.notValidAfter.timeIntervalSince1970))
        }
        if let leaf = (try? CertificateBundle.load(path: tls.cert))?.first {
            let subject = PKI.identity(of: leaf)?.description ?? "\(leaf.subject)"
            result.append(.init(kind: "leaf", path: tls.cert, subject: subject, notValidAfterUnixSeconds: leaf.notValidAfter.timeIntervalSince1970))
        }
        return result
    }
}
