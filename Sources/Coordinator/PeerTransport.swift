import SpecolaClusterCore
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SpecolaProtocol
import SpecolaRaft
import Synchronization
import NIOCertificateReloading

/// Carries Raft messages to the other replicas over mutual TLS: on the direct channel
/// (`DirectPeerLink`) to a peer with a `raftAddress` while it is connected, else over gRPC.
/// One sender per peer keeps that peer's messages in order; when a peer is
/// unreachable its messages are dropped (Raft retransmits), never queued forever.
public final class PeerTransport: Sendable {
    let selfID: NodeID
    let tls: TLSFiles
    /// This replica's own certificate as it is reloaded; nil reads the files once per connection.
    let reloader: (any CertificateReloader)?
    let logger: Logger
    private let senders = Mutex<[NodeID: PeerSender]>([:])

    public init(selfID: NodeID, tls: TLSFiles, reloader: (any CertificateReloader)? = nil, logger: Logger) {
        self.selfID = selfID
        self.tls = tls
        self.reloader = reloader
        self.logger = logger
    }

    /// (Re)points senders at the current address book.
    public func update(addresses: [NodeID: Specola_V1_Member]) {
        senders.withLock { senders in
            for (id, member) in addresses where id != selfID {
                guard let endpoint = HostPort(parsing: member.address, defaultPort: 7450) else {
                    logger.warning("replica address is not HOST:PORT; not sending to it", metadata: [
                        "peer.id": "\(id)", "peer.address": "\(member.address)",
                    ])
                    continue
                }
                let direct = member.raftAddress.isEmpty ? nil : HostPort(parsing: member.raftAddress, defaultPort: 7451)
                if let existing = senders[id], existing.endpoint == endpoint, existing.direct?.endpoint == direct { continue }
                senders[id]?.stop()
                senders[id] = PeerSender(
                    selfID: selfID, peer: member, endpoint: endpoint, direct: direct, tls: tls, reloader: reloader, logger: logger)
            }
        }
    }

    public func send(_ messages: [Message]) {
        guard !messages.isEmpty else { return }
        let grouped = Dictionary(grouping: messages, by: \.to)
        senders.withLock { senders in
            for (to, batch) in grouped { senders[to]?.send(batch) }
        }
    }

    public func stopAll() {
        senders.withLock { senders in
            for sender in senders.values { sender.stop() }
            senders.removeAll()
        }
    }
}

/// Sends one peer's messages in order: straight into the direct channel while it is up,
/// else in batches over one gRPC connection.
final class PeerSender: Sendable {
    let endpoint: HostPort
    let direct: DirectPeerLink?
    private let queue = PeerQueue()
    private let task: Task<Void, Never>

    init(selfID: NodeID, peer: Specola_V1_Member, endpoint: HostPort, direct: HostPort? = nil, tls: TLSFiles,
         reloader: (any CertificateReloader)?, logger: Logger) {
        self.endpoint = endpoint
        self.direct = direct.map { DirectPeerLink(peer: peer, endpoint: $0, tls: tls, reloader: reloader, logger: logger) }
        let queue = self.queue
        task = Task {
            await Self.run(selfID: selfID, peer: peer, endpoint: endpoint, tls: tls, reloader: reloader, logger: logger, queue: queue)
        }
    }

    func send(_ batch: [Message]) {
        let encoded = batch.map { (message: $0, bytes: $0.wireBytes()) }
        var rest = encoded
        if let direct {
            // A message larger than a frame (a snapshot) goes over gRPC, in pieces.
            let small = encoded.filter { $0.bytes.count <= PeerQueue.batchBytes }
            if !small.isEmpty, direct.send(small.map(\.bytes)) {
                rest = encoded.filter { $0.bytes.count > PeerQueue.batchBytes }
            }
        }
        let bulk = rest.filter { $0.message.carriesLogData }
        if !bulk.isEmpty { enqueue(bulk.map(\.bytes)) }
        let control = rest.filter { !$0.message.carriesLogData }
        if !control.isEmpty { enqueue(control.map(\.bytes), urgent: true) }
    }

    func enqueue(_ messages: [[UInt8]], urgent: Bool = false) { queue.enqueue(messages, urgent: urgent) }

    func stop() {
        task.cancel()
        direct?.stop()
        queue.finish()
    }

    private static func run(selfID: NodeID, peer: Specola_V1_Member, endpoint: HostPort, tls: TLSFiles,
                            reloader: (any CertificateReloader)?, logger: Logger, queue: PeerQueue) async {
        func noteFailure(_ error: any Error) {
            if queue.healthy.exchange(false, ordering: .relaxed) {
                logger.warning("cannot reach replica; dropping its Raft messages until it answers", metadata: [
                    "peer.name": "\(peer.name)", "peer.address": "\(endpoint)", "error": "\(error)",
                ])
            }
            // Raft resends what matters; stale heartbeats only add load.
            queue.clear()
        }
        while !Task.isCancelled {
            do {
                let transport = try HTTP2ClientTransport.Posix(
                    target: .ipv4(address: endpoint.host, port: endpoint.port),
                    transportSecurity: tls.clientSecurity(serverHost: endpoint.host, reloader: reloader) { refusal in
                        logger.error("refused a peer's certificate", metadata: [
                            "peer.name": "\(peer.name)", "peer.address": "\(endpoint)", "reason": "\(refusal.reason)",
                        ])
                    },
                    config: .defaults {
                        $0.backoff.initial = .milliseconds(50)
                        $0.backoff.max = .milliseconds(500)
                        $0.connection.maxIdleTime = nil
                    })
                try await withGRPCClient(transport: transport) { client in
                    let raft = Specola_V1_RaftPeer.Client(wrapping: client)
                    var options = CallOptions.defaults
                    // Fail fast while the peer is down instead of queueing behind a reconnect.
                    options.waitForReady = false
                    // One long-lived stream carries every batch; a broken stream is reopened.
                    while !Task.isCancelled {
                        do {
                            _ = try await raft.pipe(options: options) { writer in
                                for await _ in queue.wakeups() {
                                    while true {
                                        let batch = queue.takeBatch()
                                        if batch.isEmpty { break }
                                        if batch.count == 1, batch[0].count > PeerQueue.batchBytes {
                                            // A snapshot larger than a batch goes in pieces, in order on this stream.
                                            let whole = batch[0]
                                            for piece in PeerQueue.pieces(of: whole.count) {
                                                try await writer.write(.with {
                                                    $0.fromID = selfID
                                                    $0.chunk = Data(whole[piece])
                                                    $0.chunkTotal = UInt64(whole.count)
                                                })
                                            }
                                        } else {
                                            try await writer.write(.with { $0.fromID = selfID; $0.messages = batch.map { Data($0) } })
                                        }
                                        if !queue.healthy.exchange(true, ordering: .relaxed) {
                                            logger.info("replica reachable again", metadata: ["peer.name": "\(peer.name)", "peer.address": "\(endpoint)"])
                                        }
                                    }
                                    if Task.isCancelled { return }
                                }
                            }
                            return
                        } catch {
                            if Task.isCancelled { return }
                            noteFailure(error)
                            try? await Task.sleep(for: .milliseconds(50))
                        }
                    }
                }
                return
            } catch {
                if Task.isCancelled { return }
                noteFailure(error)
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }
}

/// A bounded queue of encoded messages plus a wake-up signal for the sender.
final class PeerQueue: Sendable {
    static let limit = 8_192
    static let batchLimit = 512
    /// Bytes of messages in one gRPC batch (the receiver takes 64 MiB); the first always goes.
    static let batchBytes = 8 << 20
    /// Bytes queued for one peer before the oldest are dropped (Raft resends what matters).
    static let bytesLimit = 128 << 20
    /// Size of the pieces a message larger than `batchBytes` travels in.
    static let chunkBytes = 4 << 20

    /// The byte ranges of the pieces a message of `count` bytes is sent in.
    static func pieces(of count: Int, size: Int = chunkBytes) -> [Range<Int>] {
        stride(from: 0, to: count, by: size).map { $0..<min($0 + size, count) }
    }

    private let items = Mutex<(messages: [[UInt8]], bytes: Int)>(([], 0))
    /// Small control messages (heartbeats, votes, answers): they go before queued log data, so
    /// megabytes of appends never hold back the heartbeat that keeps followers from campaigning.
    private let urgent = Mutex<[[UInt8]]>([])
    /// Whether the last send worked, so a dead peer is logged once per outage.
    let healthy = Atomic<Bool>(true)
    /// The current stream's continuation. A fresh stream per send attempt: an
    /// AsyncStream whose consumer was cancelled is finished for good.
    private let wake = Mutex<AsyncStream<Void>.Continuation?>(nil)
    private let finished = Atomic<Bool>(false)

    /// Wake-ups for one send attempt; starts with one so queued messages go out at once.
    func wakeups() -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        if finished.load(ordering: .relaxed) {
            continuation.finish()
        } else {
            continuation.yield()
        }
        wake.withLock { $0 = continuation }
        return stream
    }

    func enqueue(_ messages: [[UInt8]], urgent isUrgent: Bool = false) {
        if isUrgent {
            urgent.withLock { urgent in
                urgent.append(contentsOf: messages)
                if urgent.count > Self.limit { urgent.removeFirst(urgent.count - Self.limit) }
            }
            _ = wake.withLock { $0?.yield() }
            return
        }
        items.withLock { items in
            items.messages.append(contentsOf: messages)
            items.bytes += messages.reduce(0) { $0 + $1.count }
            var dropped = 0
            while items.messages.count - dropped > 1
                && (items.messages.count - dropped > Self.limit || items.bytes > Self.bytesLimit) {
                items.bytes -= items.messages[dropped].count
                dropped += 1
            }
            if dropped > 0 { items.messages.removeFirst(dropped) }
        }
        _ = wake.withLock { $0?.yield() }
    }

    /// The oldest messages, at most `batchLimit` of them and `batchBytes` together (one at least).
    func takeBatch() -> [[UInt8]] {
        let control = urgent.withLock { urgent -> [[UInt8]] in
            let batch = Array(urgent.prefix(Self.batchLimit))
            urgent.removeFirst(batch.count)
            return batch
        }
        if !control.isEmpty { return control }
        return items.withLock { items in
            var count = 0
            var bytes = 0
            while count < items.messages.count && count < Self.batchLimit {
                let size = items.messages[count].count
                if count > 0 && bytes + size > Self.batchBytes { break }
                bytes += size
                count += 1
            }
            let batch = Array(items.messages.prefix(count))
            items.messages.removeFirst(count)
            items.bytes -= bytes
            return batch
        }
    }

    func clear() {
        items.withLock { $0 = ([], 0) }
        urgent.withLock { $0.removeAll() }
    }

    func finish() {
        finished.store(true, ordering: .relaxed)
        wake.withLock { $0?.finish() }
    }
}
