import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOPosix
import NIOSSL
import SpecolaProtocol
import SpecolaRaft
import TestSupport
import Testing
@testable import SpecolaClusterCore
@testable import SpecolaCoordinator
import CooperativePoolWatch

/// The direct Raft channel on loopback with real certificates: what a peer sends arrives in
/// order under its certified name; garbage, oversized frames, revoked certificates and a
/// certificate that is not the claimed member end that connection only, with a log line.
@Suite(.watchesCooperativePool) struct DirectPeerChannelTests {
    /// Records what reaches the replica's side of the channel.
    actor RecordingInbox: DirectPeerInbox {
        var received: [(name: String, messages: [Message])] = []
        func consume(_ batches: AsyncStream<DirectPeerBatch>, certifiedAs certificateName: String) async -> String? {
            for await batch in batches {
                batch.release()
                received.append((certificateName, batch.messages))
            }
            return nil
        }
        var count: Int { received.reduce(0) { $0 + $1.messages.count } }
    }

    struct Fixture {
        let dir: TempDir
        let pki: TestPKI
        let records = RecordedLogs()
        var logger: Logger {
            Logger(label: "test.direct") { [records] _ in RecordingLogHandler(records: records, withMetadata: true) }
        }

        init() throws {
            dir = try TempDir()
            pki = try TestPKI(in: dir)
        }

        func coordinator(_ name: String) throws -> TLSFiles { try pki.issue(.coordinator, name, sans: ["127.0.0.1"]) }

        func listen(as name: String, inbox: any DirectPeerInbox, denyList: DenyList = DenyList(),
                    handshakeTimeout: TimeAmount = .seconds(10)) async throws -> (DirectPeerListener, HostPort) {
            let listener = try await DirectPeerListener.start(
                endpoint: HostPort(host: "127.0.0.1", port: 0), tls: try coordinator(name), reloader: nil, denyList: denyList,
                inbox: inbox, handshakeTimeout: handshakeTimeout, logger: logger)
            return (listener, HostPort(host: "127.0.0.1", port: listener.localAddress!.port!))
        }

        func link(as name: String, to endpoint: HostPort) throws -> DirectPeerLink {
            DirectPeerLink(peer: .with { $0.id = 2; $0.name = "peer" }, endpoint: endpoint, tls: try coordinator(name),
                           reloader: nil, logger: logger)
        }

        /// A TLS connection as `name` that writes `bytes` raw once the handshake is done.
        func rawConnection(as name: String, to endpoint: HostPort, writing bytes: [UInt8]) async throws -> any Channel {
            let context = try NIOSSLContext(configuration: try coordinator(name).peerChannelClientConfiguration())
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                    }
                }
                .connect(host: endpoint.host, port: endpoint.port).get()
            try await channel.writeAndFlush(ByteBuffer(bytes: bytes)).get()
            return channel
        }

        func logged(_ text: String) -> Bool { records.messages.contains { $0.contains(text) } }
    }

    static func heartbeat(from: NodeID, to: NodeID = 1, term: Term = 1) -> Message {
        Message(from: from, to: to, term: term, payload: .heartbeat(commit: 0, context: []))
    }

    /// Waits until the connection is closed (by the other end), or fails.
    static func waitClosed(_ channel: any Channel) async throws {
        try await waitUntil("the listener to close the connection", timeout: .seconds(10)) { !channel.isActive }
    }

    @Test func framesRoundTripAndLargeBatchesSplit() throws {
        let big = Message(from: 2, to: 1, term: 3, payload: .append(
            prevIndex: 1, prevTerm: 1, entries: [Entry(term: 3, index: 2, data: [UInt8](repeating: 7, count: 3 << 20))], commit: 1))
        let messages = [Self.heartbeat(from: 2), big, big, big, Self.heartbeat(from: 2)]
        var buffer = PeerFrame.encode(messages.map { $0.wireBytes() })
        var decoded: [Message] = []
        var frames = 0
        while let length = buffer.readInteger(as: UInt32.self) {
            #expect(Int(length) <= PeerFrame.maxBytes)
            decoded += try PeerFrame.decode(buffer.readSlice(length: Int(length))!)
            frames += 1
        }
        #expect(decoded == messages)
        #expect(frames > 1)
        #expect(throws: PeerFrameError.self) { try PeerFrame.decode(ByteBuffer(bytes: [1, 0, 0, 0, 3, 1, 2, 3])) }
        let mixed = PeerFrame.encode([Self.heartbeat(from: 2).wireBytes(), Self.heartbeat(from: 3).wireBytes()])
        #expect(throws: PeerFrameError.self) { try PeerFrame.decode(mixed.getSlice(at: 4, length: mixed.readableBytes - 4)!) }
    }

    /// c1 listens with a recording inbox; c2's link to it is connected.
    static func withConnectedLink(_ body: (Fixture, RecordingInbox, HostPort, DirectPeerLink) async throws -> Void) async throws {
        let fixture = try Fixture()
        defer { fixture.dir.remove() }
        let inbox = RecordingInbox()
        let (listener, endpoint) = try await fixture.listen(as: "c1", inbox: inbox)
        defer { listener.close() }
        let link = try fixture.link(as: "c2", to: endpoint)
        defer { link.stop() }
        try await waitUntil("the link to connect") { link.isConnected }
        try await body(fixture, inbox, endpoint, link)
    }

    @Test(.runsOffThePool) func aPeerSendsInOrderUnderItsCertifiedName() async throws {
        try await Self.withConnectedLink { _, inbox, _, link in
            let sent = (1...200).map { Self.heartbeat(from: 2, term: Term($0)) }
            for batch in stride(from: 0, to: sent.count, by: 7).map({ Array(sent[$0..<min($0 + 7, sent.count)]) }) {
                #expect(link.send(batch.map { $0.wireBytes() }))
            }
            try await waitUntil("every message to arrive") { await inbox.count == sent.count }
            let received = await inbox.received
            #expect(received.flatMap(\.messages) == sent)
            #expect(received.allSatisfy { $0.name == "c2" })
        }
    }

    @Test(.runsOffThePool) func aGarbageFrameClosesOnlyThatConnection() async throws {
        try await Self.withConnectedLink { fixture, inbox, endpoint, link in
            // A well-formed frame of a batch whose one message is noise.
            let noise: [UInt8] = (0..<64).map { _ in UInt8.random(in: 0...255) }
            let frame: [UInt8] = [0, 0, 0, 69, 1, 0, 0, 0, 64] + noise
            let garbage = try await fixture.rawConnection(as: "c3", to: endpoint, writing: frame)
            try await Self.waitClosed(garbage)
            #expect(fixture.logged("refused a garbage Raft frame"), "\(fixture.records.messages)")
            #expect(fixture.logged("cert.identity=coordinator/c3"), "\(fixture.records.messages)")
            // The other peer's connection carries on.
            #expect(link.send([Self.heartbeat(from: 2).wireBytes()]))
            try await waitUntil("the other peer's message to arrive") { await inbox.count == 1 }
            #expect(link.isConnected)
        }
    }

    @Test(.runsOffThePool) func aConnectionThatNeverCompletesTLSIsClosedAndAnAdmittedOneStays() async throws {
        let fixture = try Fixture()
        defer { fixture.dir.remove() }
        let inbox = RecordingInbox()
        // 2 s: under a CPU hog a real handshake took longer than 500 ms on the listener's side.
        let (listener, endpoint) = try await fixture.listen(as: "c1", inbox: inbox, handshakeTimeout: .seconds(2))
        defer { listener.close() }
        let link = try fixture.link(as: "c2", to: endpoint)
        defer { link.stop() }
        // Admitted: its first message reached the replica's side.
        try await waitUntil("the link's first message to arrive") {
            _ = link.send([Self.heartbeat(from: 2).wireBytes()])
            return await inbox.count >= 1
        }
        let admittedCount = await inbox.count
        // A plain TCP socket that never starts TLS.
        let silent = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: endpoint.host, port: endpoint.port).get()
        try await Self.waitClosed(silent)
        #expect(fixture.logged("no TLS handshake within 2000 ms"), "\(fixture.records.messages)")
        #expect(fixture.records.messages.filter { $0.contains("no TLS handshake") }.count == 1, "\(fixture.records.messages)")
        // The admitted link outlived the deadline and still delivers.
        #expect(link.send([Self.heartbeat(from: 2).wireBytes()]))
        try await waitUntil("the admitted peer's next message to arrive") { await inbox.count > admittedCount }
        #expect(link.isConnected)
    }

    @Test(.runsOffThePool) func anOversizedFrameIsRefusedBeforeItIsBuffered() async throws {
        let fixture = try Fixture()
        defer { fixture.dir.remove() }
        let inbox = RecordingInbox()
        let (listener, endpoint) = try await fixture.listen(as: "c1", inbox: inbox)
        defer { listener.close() }
        let length = UInt32(PeerFrame.maxBytes + 1)
        let header = withUnsafeBytes(of: length.bigEndian, Array.init) + [1]
        let oversized = try await fixture.rawConnection(as: "c2", to: endpoint, writing: header)
        try await Self.waitClosed(oversized)
        #expect(fixture.logged("over the \(PeerFrame.maxBytes)-byte limit"), "\(fixture.records.messages)")
        // The listener still takes new connections.
        let link = try fixture.link(as: "c2", to: endpoint)
        defer { link.stop() }
        try await waitUntil("a new link to connect") { link.isConnected }
        #expect(link.send([Self.heartbeat(from: 2).wireBytes()]))
        try await waitUntil("its message to arrive") { await inbox.count == 1 }
    }

    /// Keeps every batch untaken until `takeAll`, as a replica that has fallen behind does.
    actor HoldingInbox: DirectPeerInbox {
        private var held: [DirectPeerBatch] = []
        private var holding = true
        private(set) var arrived = 0
        func consume(_ batches: AsyncStream<DirectPeerBatch>, certifiedAs certificateName: String) async -> String? {
            for await batch in batches {
                arrived += 1
                if holding { held.append(batch) } else { batch.release() }
            }
            return nil
        }
        func takeAll() {
            holding = false
            for batch in held { batch.release() }
            held.removeAll()
        }
    }

    /// The gate's rules, step by step on an embedded channel: a sender not yet admitted is held
    /// past 256 KiB; a replica behind by over 32 MiB holds reads until it is under 8 MiB; a resume
    /// decided before a newer hand-off does not undo the pause; no read reaches the socket while
    /// the gate is closed, and the one held back goes when it opens.
    @Test func theReadGateHoldsAnUnadmittedFloodAndAReplicaThatFallsBehind() throws {
        let channel = EmbeddedChannel()
        let gate = DirectPeerReadGate()
        let counter = OutboundCounter()
        try channel.pipeline.syncOperations.addHandler(counter)
        try channel.pipeline.syncOperations.addHandler(DirectPeerReadLimiter(gate: gate))
        try channel.writeInbound(ByteBuffer(repeating: 0, count: 200 << 10))
        #expect(!gate.paused)
        try channel.writeInbound(ByteBuffer(repeating: 0, count: 100 << 10))
        #expect(gate.paused, "more than 256 KiB before admission")
        channel.read()
        channel.read()
        #expect(counter.reads == 0, "a read passed while paused")
        gate.admitted()
        #expect(!gate.paused)
        #expect(counter.reads == 1, "the held-back read goes once, when the gate opens")
        channel.read()
        #expect(counter.reads == 2)

        let frame = 2 << 20
        let loop = channel.embeddedEventLoop
        var releases = (0..<16).map { _ in gate.handToReplica(bytes: frame, on: loop) }
        #expect(!gate.paused, "exactly 32 MiB untaken")
        releases.append(gate.handToReplica(bytes: frame, on: loop))
        #expect(gate.paused, "34 MiB untaken")
        channel.read()
        for release in releases[0..<13] { release() }
        loop.run()
        #expect(gate.paused, "8 MiB untaken is not yet under the resume mark")
        releases[13]()
        // A resume is now decided, but before the event loop runs it the replica is handed 28 MiB more.
        let more = (0..<14).map { _ in gate.handToReplica(bytes: frame, on: loop) }
        loop.run()
        #expect(gate.paused, "a resume decided before a newer hand-off lifted the pause")
        #expect(counter.reads == 2)
        for release in releases[14...] + more { release() }
        loop.run()
        #expect(!gate.paused)
        #expect(counter.reads == 3)
        _ = try channel.finish()
    }

    /// A peer sends 80 MiB while the replica takes nothing: the connection stops reading once
    /// `pauseBytes` wait untaken (the rest stays in the sender's and the kernel's buffers), and
    /// reads the rest once the replica takes them.
    @Test(.runsOffThePool) func aConnectionStopsReadingWhileTheReplicaTakesNothing() async throws {
        let fixture = try Fixture()
        defer { fixture.dir.remove() }
        let inbox = HoldingInbox()
        let (listener, endpoint) = try await fixture.listen(as: "c1", inbox: inbox)
        defer { listener.close() }
        let frameCount = 40
        let entry = Entry(term: 1, index: 1, data: [UInt8](repeating: 5, count: (2 << 20) - 64))
        let frame = PeerFrame.encode([Message(from: 2, to: 1, term: 1, payload: .append(
            prevIndex: 0, prevTerm: 0, entries: [entry], commit: 0)).wireBytes()])
        let framesBeforePause = DirectPeerReadGate.pauseBytes / (frame.readableBytes - 4) + 1
        let sender = try await fixture.rawConnection(as: "c2", to: endpoint, writing: [])
        defer { sender.close(promise: nil) }
        var stream = sender.allocator.buffer(capacity: frame.readableBytes * frameCount)
        for _ in 0..<frameCount { stream.writeImmutableBuffer(frame) }
        let written = sender.eventLoop.makePromise(of: Void.self)
        sender.writeAndFlush(stream, promise: written)
        let sent = NIOLockedValueBox(false)
        written.futureResult.whenSuccess { sent.withLockedValue { $0 = true } }

        try await waitUntil("the listener to read up to its pause limit") { await inbox.arrived >= framesBeforePause }
        // Paused: for a second, at most the frame being decoded when it paused arrives, and the
        // sender's write cannot finish (its 80 MiB do not fit in the kernel's buffers).
        let watchEnd = ContinuousClock.now + .seconds(1)
        while ContinuousClock.now < watchEnd {
            let arrived = await inbox.arrived
            #expect(arrived <= framesBeforePause + 1, "read on past the pause: \(arrived) of \(frameCount) frames")
            if arrived > framesBeforePause + 1 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(!sent.withLockedValue { $0 }, "the whole stream was read while the replica took nothing")

        await inbox.takeAll()
        try await waitUntil("every frame to arrive once the replica takes them") { await inbox.arrived == frameCount }
        try await waitUntil("the sender's write to finish") { sent.withLockedValue { $0 } }
        #expect(sender.isActive)
    }

    @Test(.runsOffThePool) func revokedAndNonCoordinatorCertificatesAreRefused() async throws {
        let fixture = try Fixture()
        defer { fixture.dir.remove() }
        let inbox = RecordingInbox()
        let denyList = DenyList()
        let (listener, endpoint) = try await fixture.listen(as: "c1", inbox: inbox, denyList: denyList)
        defer { listener.close() }
        // A user certificate from the same CA is not a replica.
        let user = try fixture.pki.issue(.user, "mallory")
        let context = try NIOSSLContext(configuration: try user.peerChannelClientConfiguration())
        let userChannel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                }
            }
            .connect(host: endpoint.host, port: endpoint.port).get()
        try await Self.waitClosed(userChannel)
        #expect(fixture.logged("refused a direct Raft connection"), "\(fixture.records.messages)")

        // A connected replica whose certificate is revoked is cut at once; a new connection is refused.
        let link = try fixture.link(as: "c2", to: endpoint)
        defer { link.stop() }
        try await waitUntil("the link to connect") { link.isConnected }
        denyList.replace(with: [.with { $0.identity = "coordinator/c2"; $0.revokedBy = "user/admin"; $0.reason = "test" }])
        // The client may see the handshake done before the listener admits it: then the first
        // connection is refused at admission rather than cut.
        let refusedAsRevoked = { fixture.records.messages.contains { $0.contains("refused a direct Raft connection") && $0.contains("was revoked") } }
        try await waitUntil("the revoked peer to be cut") { fixture.logged("its certificate was revoked") || refusedAsRevoked() }
        try await waitUntil("a reconnect to be refused") { refusedAsRevoked() }
        #expect(await inbox.count == 0)
    }

    @Test(.runsOffThePool) func theReplicaRefusesACertificateThatIsNotTheClaimedMember() async throws {
        let fixture = try Fixture()
        defer { fixture.dir.remove() }
        var settings = Replica.Settings(id: 1, name: "c1")
        settings.tick = .milliseconds(5)
        let replica = try Replica(
            settings: settings, storage: RaftStorage(path: fixture.dir.file("raft.sqlite")),
            peers: [.with { $0.id = 1; $0.name = "c1"; $0.address = "127.0.0.1:1" },
                    .with { $0.id = 2; $0.name = "c2"; $0.address = "127.0.0.1:2" }],
            initialVoters: [1],
            transport: PeerTransport(selfID: 1, tls: TLSFiles(ca: "", cert: "", key: ""), logger: fixture.logger),
            thresholds: .init(), logger: fixture.logger)
        let (listener, endpoint) = try await fixture.listen(as: "c1", inbox: replica)
        defer { listener.close() }
        // c3 holds a valid coordinator certificate but claims to be replica 2 (c2).
        let link = try fixture.link(as: "c3", to: endpoint)
        defer { link.stop() }
        try await waitUntil("the link to connect") { link.isConnected }
        #expect(link.send([Self.heartbeat(from: 2, term: 5).wireBytes()]))
        try await waitUntil("the claim to be refused") { fixture.logged("replica id 2 is c2, not c3") }
        #expect(fixture.logged("refused Raft traffic: the sender is not the member its certificate names"))
        // Nothing was stepped: the replica did not adopt the claimed sender's term.
        #expect(await replica.term < 5)
    }
}
