import Foundation
import Logging
import NIOCertificateReloading
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import SpecolaClusterCore
import SpecolaProtocol
import SpecolaRaft
import Synchronization
import X509

// The direct Raft channel: Raft messages between replicas as length-prefixed frames over
// mutual TLS, without gRPC and HTTP/2. A replica whose member entry has a `raftAddress`
// listens there; peers that know that address send to it there and fall back to the gRPC
// pipe while it does not answer, so a group can be upgraded one replica at a time.

/// The frames: a 4-byte big-endian length, then that many bytes: a kind byte (1: a batch) and
/// the batch's Raft messages, each as a 4-byte big-endian length and its wire bytes.
enum PeerFrame {
    static let batchKind: UInt8 = 1
    /// Largest frame accepted. Senders cut batches at `PeerQueue.batchBytes`; a message larger
    /// than that (a snapshot) travels on the gRPC pipe, in pieces.
    static let maxBytes = PeerQueue.batchBytes + (1 << 20)

    /// `messages` (encoded) as one or more frames, back to back in one buffer.
    static func encode(_ messages: [[UInt8]], allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        let total = messages.reduce(0) { $0 + $1.count + 4 }
        var buffer = allocator.buffer(capacity: total + 5 * (1 + total / PeerQueue.batchBytes))
        var start = -1
        var frameBytes = 0
        func closeFrame() {
            guard start >= 0 else { return }
            buffer.setInteger(UInt32(buffer.writerIndex - start - 4), at: start)
        }
        for message in messages {
            if start < 0 || (frameBytes > 0 && frameBytes + message.count > PeerQueue.batchBytes) {
                closeFrame()
                start = buffer.writerIndex
                buffer.writeInteger(UInt32(0))
                buffer.writeInteger(batchKind)
                frameBytes = 0
            }
            buffer.writeInteger(UInt32(message.count))
            buffer.writeBytes(message)
            frameBytes += message.count + 4
        }
        closeFrame()
        return buffer
    }

    /// The messages of one frame's payload (the bytes after its length).
    static func decode(_ payload: ByteBuffer) throws -> [Message] {
        var payload = payload
        guard payload.readInteger(as: UInt8.self) == batchKind else {
            throw PeerFrameError.garbage("the frame kind is not \(batchKind) (a batch)")
        }
        var messages: [Message] = []
        while payload.readableBytes > 0 {
            guard let length = payload.readInteger(as: UInt32.self), let bytes = payload.readBytes(length: Int(length)) else {
                throw PeerFrameError.garbage("a message's length runs past the end of its frame")
            }
            do {
                messages.append(try Message(wire: bytes))
            } catch {
                throw PeerFrameError.garbage("a message does not decode: \(error)")
            }
        }
        guard let from = messages.first?.from else { throw PeerFrameError.garbage("the frame carries no message") }
        guard messages.allSatisfy({ $0.from == from }) else {
            throw PeerFrameError.garbage("the frame mixes messages from several replicas")
        }
        return messages
    }
}

enum PeerFrameError: Error, CustomStringConvertible {
    case oversize(Int)
    case garbage(String)

    var description: String {
        switch self {
        case .oversize(let bytes): "a frame announces \(bytes) bytes, over the \(PeerFrame.maxBytes)-byte limit"
        case .garbage(let why): "a frame does not decode: \(why)"
        }
    }
}

/// Cuts the byte stream into frames; a length over the limit is refused before anything is buffered.
struct PeerFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        guard Int(length) <= PeerFrame.maxBytes else { throw PeerFrameError.oversize(Int(length)) }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: Int(length))!))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        .needMoreData
    }
}

/// One decoded frame on its way into the replica. `release` tells the connection it was taken,
/// so a connection whose replica falls behind stops reading until it catches up.
struct DirectPeerBatch: Sendable {
    var messages: [Message]
    var from: NodeID
    var release: @Sendable () -> Void
}

/// Where a direct channel's batches go: the replica (`Replica` conforms).
protocol DirectPeerInbox: Sendable {
    /// Steps the batches in order until the stream ends or one is refused; returns why it was refused.
    func consume(_ batches: AsyncStream<DirectPeerBatch>, certifiedAs certificateName: String) async -> String?
}

/// Accepts peers' direct channels: mutual TLS against the cluster CA (as on the gRPC port), then
/// per connection the same checks as the gRPC peer service: a coordinator certificate, not
/// revoked (a connection ends the moment it is), whose name is the member the messages claim
/// to come from. A garbage or oversized frame ends that connection only, with a log line.
final class DirectPeerListener: Sendable {
    let channel: any Channel

    private init(channel: any Channel) { self.channel = channel }

    var localAddress: SocketAddress? { channel.localAddress }

    static func start(endpoint: HostPort, tls: TLSFiles, reloader: (any CertificateReloader)?, denyList: DenyList,
                      inbox: any DirectPeerInbox, handshakeTimeout: TimeAmount = TLSHandshakeDeadline.defaultTimeout,
                      logger: Logger) async throws -> DirectPeerListener {
        let context = try NIOSSLContext(configuration: tls.mutualTLSServerConfiguration(reloader: reloader))
        let check = ClientChainCheck(caPath: tls.ca)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    let gate = DirectPeerReadGate()
                    try sync.addHandler(DirectPeerReadLimiter(gate: gate))
                    try sync.addHandler(NIOSSLServerHandler(
                        context: context, configuration: .init(), customVerificationCallbackWithMetadata: check.callback()))
                    try sync.addHandler(TLSHandshakeDeadline(timeout: handshakeTimeout, connection: "a direct Raft connection", logger: logger))
                    try sync.addHandler(ByteToMessageHandler(PeerFrameDecoder()))
                    try sync.addHandler(DirectPeerReceiver(gate: gate, denyList: denyList, inbox: inbox, logger: logger))
                }
            }
            .bind(host: endpoint.host, port: endpoint.port).get()
        return DirectPeerListener(channel: channel)
    }

    func close() { channel.close(promise: nil) }
}

/// One accepted connection: checks who is on the other end once TLS is up, then hands its
/// frames to the replica in order.
final class DirectPeerReceiver: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let gate: DirectPeerReadGate
    private let denyList: DenyList
    private let inbox: any DirectPeerInbox
    private let logger: Logger
    private var identity: Identity?
    private var inboxFeed: AsyncStream<DirectPeerBatch>.Continuation?
    private var watchers: [Task<Void, Never>] = []

    init(gate: DirectPeerReadGate, denyList: DenyList, inbox: any DirectPeerInbox, logger: Logger) {
        self.gate = gate
        self.denyList = denyList
        self.inbox = inbox
        self.logger = logger
    }

    private func refuse(_ context: ChannelHandlerContext, _ message: Logger.Message, _ reason: String) {
        logger.warning(message, metadata: [
            "peer": "\(context.remoteAddress.map { "\($0)" } ?? "?")", "cert.identity": "\(identity.map { "\($0)" } ?? "none")",
            "reason": "\(reason)",
        ])
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent { admit(context) }
        context.fireUserInboundEventTriggered(event)
    }

    private func admit(_ context: ChannelHandlerContext) {
        guard let presented = context.pipeline.syncOperations.presentedCertificate(), let identity = presented.identity
        else {
            return refuse(context, "refused a direct Raft connection", "its client certificate carries no Specola identity")
        }
        self.identity = identity
        let principal = Principal(kind: Principal.Kind(identity.role), name: identity.name)
        if case .deny(let why) = Authorization.authorize(principal, roles: [], .raftPeer, .cluster) {
            return refuse(context, "refused a direct Raft connection", why)
        }
        let serial = presented.serial
        let name = identity.description
        if let entry = denyList.entry(serial: serial, identity: name) {
            return refuse(context, "refused a direct Raft connection", "\(DenyList.refusal(entry, identity: name, serial: serial).message)")
        }
        let (batches, feed) = AsyncStream<DirectPeerBatch>.makeStream()
        inboxFeed = feed
        gate.admitted()
        let channel = context.channel
        let (inbox, logger, denyList) = (self.inbox, self.logger, self.denyList)
        let remote = "\(context.remoteAddress.map { "\($0)" } ?? "?")"
        watchers.append(Task {
            guard let reason = await inbox.consume(batches, certifiedAs: identity.name) else { return }
            logger.warning("refused Raft traffic: the sender is not the member its certificate names", metadata: [
                "peer": "\(remote)", "cert.identity": "\(identity)", "reason": "\(reason)",
            ])
            channel.close(promise: nil)
        })
        watchers.append(Task {
            guard let entry = await denyList.waitUntilRevoked(serial: serial, identity: name) else { return }
            logger.warning("closed a direct Raft connection: its certificate was revoked", metadata: [
                "peer": "\(remote)", "cert.identity": "\(identity)",
                "reason": "\(DenyList.refusal(entry, identity: name, serial: serial).message)",
            ])
            channel.close(promise: nil)
        })
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let payload = unwrapInboundIn(data)
        guard let feed = inboxFeed else {
            return refuse(context, "refused a direct Raft connection", "a frame arrived before its sender was admitted")
        }
        let messages: [Message]
        do {
            messages = try PeerFrame.decode(payload)
        } catch {
            return refuse(context, "refused a garbage Raft frame; closing that replica's direct connection", "\(error)")
        }
        feed.yield(DirectPeerBatch(messages: messages, from: messages[0].from, release: gate.handToReplica(
            bytes: payload.readableBytes, on: context.eventLoop)))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch error {
        case let error as PeerFrameError:
            refuse(context, "refused a Raft frame; closing that replica's direct connection", "\(error)")
        default:
            refuse(context, "closed a direct Raft connection", "\(error)")
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        inboxFeed?.finish()
        for watcher in watchers { watcher.cancel() }
        watchers.removeAll()
        context.fireChannelInactive()
    }
}

/// This replica's direct channel to one peer: connects (and reconnects) in the background;
/// `send` writes straight into the connection from the calling thread and returns false while
/// there is none, so the caller sends over gRPC instead.
final class DirectPeerLink: Sendable {
    let endpoint: HostPort
    /// Bytes written and not yet taken by the socket beyond which new messages are dropped
    /// (Raft resends what matters), so a stalled peer cannot grow this process's memory.
    static let outstandingLimit = 16 << 20

    private let channel = Mutex<(any Channel)?>(nil)
    private let outstanding = Atomic<Int>(0)
    /// Frames handed in and not yet given to the connection's event loop.
    private let pending = Mutex<ByteBuffer?>(nil)
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(peer: Specola_V1_Member, endpoint: HostPort, tls: TLSFiles, reloader: (any CertificateReloader)?, logger: Logger) {
        self.endpoint = endpoint
        task.withLock { $0 = Task { [weak self] in await self?.run(peer: peer, tls: tls, reloader: reloader, logger: logger) } }
    }

    var isConnected: Bool { channel.withLock { $0 != nil } }

    /// Writes `messages` (encoded, none larger than `PeerQueue.batchBytes`) now, in order after
    /// those written before; false when not connected.
    func send(_ messages: [[UInt8]]) -> Bool {
        guard let channel = channel.withLock({ $0 }) else { return false }
        guard outstanding.load(ordering: .relaxed) < Self.outstandingLimit else { return true }
        let frames = PeerFrame.encode(messages, allocator: channel.allocator)
        outstanding.add(frames.readableBytes, ordering: .relaxed)
        // Sends that arrive before the event loop gets to the first one leave with it, in one write.
        let first = pending.withLock { pending -> Bool in
            guard pending != nil else {
                pending = frames
                return true
            }
            pending!.writeImmutableBuffer(frames)
            return false
        }
        guard first else { return true }
        channel.eventLoop.execute { [self] in
            guard let buffer = pending.withLock({ pending in defer { pending = nil }; return pending }) else { return }
            let bytes = buffer.readableBytes
            channel.writeAndFlush(buffer).whenComplete { [self] _ in outstanding.subtract(bytes, ordering: .relaxed) }
        }
        return true
    }

    func stop() {
        task.withLock { $0?.cancel() }
        channel.withLock { $0?.close(promise: nil) }
    }

    private func run(peer: Specola_V1_Member, tls: TLSFiles, reloader: (any CertificateReloader)?, logger: Logger) async {
        let metadata: Logger.Metadata = ["peer.name": "\(peer.name)", "peer.raft_address": "\(endpoint)"]
        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: tls.peerChannelClientConfiguration(reloader: reloader))
        } catch {
            logger.error("cannot set up TLS for the direct Raft channel; sending Raft traffic over gRPC", metadata: metadata.merging(
                ["error": "\(error)"]) { $1 })
            return
        }
        let check = CoordinatorServerCheck(caPath: tls.ca, serverHost: endpoint.host)
        let serverHostname = PKI.ipAddressBytes(endpoint.host) == nil ? endpoint.host : nil
        var backoff = Duration.milliseconds(100)
        var lastFailure: String?
        while !Task.isCancelled {
            do {
                let loop = MultiThreadedEventLoopGroup.singleton.next()
                let handshake = loop.makePromise(of: Void.self)
                let bootstrap = ClientBootstrap(group: loop)
                    .connectTimeout(.seconds(1))
                    .channelOption(.socketOption(.tcp_nodelay), value: 1)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            let sync = channel.pipeline.syncOperations
                            try sync.addHandler(NIOSSLClientHandler(
                                context: context, serverHostname: serverHostname,
                                customVerificationCallbackWithMetadata: check.callback { refusal in
                                    logger.error("refused a peer's certificate on the direct Raft channel", metadata: metadata.merging(
                                        ["reason": "\(refusal.reason)"]) { $1 })
                                }))
                            try sync.addHandler(DirectPeerLinkGuard(handshake: handshake))
                        }
                    }
                let connected: any Channel
                do {
                    connected = try await bootstrap.connect(host: endpoint.host, port: endpoint.port).get()
                } catch {
                    handshake.fail(error)
                    throw error
                }
                // A listener that never finishes the handshake must not hold this link forever.
                let deadline = loop.scheduleTask(in: .seconds(5)) { handshake.fail(ChannelError.connectTimeout(.seconds(5))) }
                defer { deadline.cancel() }
                do {
                    try await handshake.futureResult.get()
                } catch {
                    connected.close(promise: nil)
                    throw error
                }
                guard !Task.isCancelled else {
                    connected.close(promise: nil)
                    return
                }
                channel.withLock { $0 = connected }
                logger.info("direct Raft channel up", metadata: metadata)
                lastFailure = nil
                backoff = .milliseconds(100)
                try? await connected.closeFuture.get()
                channel.withLock { $0 = nil }
                outstanding.store(0, ordering: .relaxed)
                if Task.isCancelled { return }
                logger.info("direct Raft channel closed; sending over gRPC until it is back", metadata: metadata)
            } catch {
                let text = "\(error)"
                if lastFailure != text {
                    logger.info("no direct Raft channel to this replica; sending its Raft traffic over gRPC meanwhile", metadata: metadata.merging(
                        ["error": "\(text)"]) { $1 })
                    lastFailure = text
                }
                // A replica that does not listen there (not yet upgraded) is retried at a slow pace.
                backoff = min(backoff * 2, .seconds(5))
            }
            try? await Task.sleep(for: backoff)
        }
    }
}

/// The client end's guard: reports the TLS handshake, and closes the connection on an error
/// or on any byte from the server (the channel carries nothing back).
final class DirectPeerLinkGuard: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    /// Completed once: by the handshake, or by the error or close that came first.
    let handshake: EventLoopPromise<Void>

    init(handshake: EventLoopPromise<Void>) { self.handshake = handshake }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent { handshake.succeed() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { context.close(promise: nil) }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        handshake.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        handshake.fail(ChannelError.ioOnClosedChannel)
        context.fireChannelInactive()
    }
}

/// Whether a direct connection reads from its socket. It stops while its sender, not yet
/// admitted, has sent more than a handshake needs (TLS keeps every byte that arrives while the
/// client certificate is being checked), and while the replica has more than `pauseBytes`
/// handed to it and not yet taken. Used on the connection's event loop only.
final class DirectPeerReadGate {
    static let bytesBeforeAdmission = 256 << 10
    static let pauseBytes = 32 << 20
    static let resumeBytes = 8 << 20

    /// Shared with the replica, which takes batches on its own thread.
    private let untaken = UntakenBytes()
    private var bytesReceived = 0
    private var isAdmitted = false
    private(set) var paused = false
    /// Called when the gate opens again (`DirectPeerReadLimiter` lets a held-back read through).
    var onOpen: (() -> Void)?

    func received(bytes: Int) {
        guard !isAdmitted else { return }
        bytesReceived += bytes
        update()
    }

    func admitted() {
        isAdmitted = true
        update()
    }

    /// Counts a batch handed to the replica; returns what the replica calls once it took it.
    func handToReplica(bytes: Int, on eventLoop: any EventLoop) -> @Sendable () -> Void {
        if untaken.count.add(bytes, ordering: .sequentiallyConsistent).newValue > Self.pauseBytes,
            !untaken.replicaIsBehind.load(ordering: .sequentiallyConsistent) {
            untaken.replicaIsBehind.store(true, ordering: .sequentiallyConsistent)
            update()
        }
        let (untaken, gate) = (self.untaken, NIOLoopBound(self, eventLoop: eventLoop))
        return {
            // Most takes find the gate open and cost no hop to the event loop.
            guard untaken.count.subtract(bytes, ordering: .sequentiallyConsistent).newValue < Self.resumeBytes,
                untaken.replicaIsBehind.load(ordering: .sequentiallyConsistent) else { return }
            // Decided on the event loop, as the pause is: decided here, it could land after a newer pause.
            eventLoop.execute { gate.value.resumeIfTaken() }
        }
    }

    private func resumeIfTaken() {
        guard untaken.replicaIsBehind.load(ordering: .sequentiallyConsistent),
            untaken.count.load(ordering: .sequentiallyConsistent) < Self.resumeBytes else { return }
        untaken.replicaIsBehind.store(false, ordering: .sequentiallyConsistent)
        update()
    }

    private func update() {
        let replicaIsBehind = untaken.replicaIsBehind.load(ordering: .sequentiallyConsistent)
        let pause = replicaIsBehind || (!isAdmitted && bytesReceived > Self.bytesBeforeAdmission)
        guard pause != paused else { return }
        paused = pause
        if !pause { onOpen?() }
    }
}

/// A direct connection's bytes handed to the replica and not yet taken, and whether that is
/// over the pause mark (set and cleared on the event loop; read by the replica too).
final class UntakenBytes: Sendable {
    let count = Atomic<Int>(0)
    let replicaIsBehind = Atomic<Bool>(false)
}

/// First in a direct connection's pipeline, under TLS: counts the bytes a sender sends before it
/// is admitted, and holds back every read (the event loop's and the ones TLS asks for itself)
/// while the gate is closed, letting one through when it opens. The channel keeps `autoRead`.
final class DirectPeerReadLimiter: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = Any

    private let gate: DirectPeerReadGate
    private var readHeldBack = false

    init(gate: DirectPeerReadGate) { self.gate = gate }

    func handlerAdded(context: ChannelHandlerContext) {
        gate.onOpen = { [unowned self, unowned context] in
            guard readHeldBack else { return }
            readHeldBack = false
            context.read()
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) { gate.onOpen = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        gate.received(bytes: unwrapInboundIn(data).readableBytes)
        context.fireChannelRead(data)
    }

    func read(context: ChannelHandlerContext) {
        if gate.paused {
            readHeldBack = true
        } else {
            context.read()
        }
    }
}

/// The direct channel's listener could not start (the replica does not start either).
struct DirectChannelStartError: Error, CustomStringConvertible {
    var description: String
}
