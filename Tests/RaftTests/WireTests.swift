import SpecolaRaft
import Testing
import CooperativePoolWatch

/// The binary format round-trips every value and rejects garbage with an error, never a trap.
@Suite(.cpuBoundOffThePool, .watchesCooperativePool) struct WireTests {
    static let snapshot = Snapshot(
        meta: SnapshotMeta(index: 77, term: 5, config: ConfigState(voters: [1, 2, 3], learners: [9])),
        data: [1, 2, 3, 4])
    static let entries = [
        Entry(term: 3, index: 10, kind: .normal, data: Array("hello".utf8)),
        Entry(term: 3, index: 11, kind: .configChange, data: ConfigChange.addLearner(4).wireBytes()),
        Entry(term: UInt64.max, index: UInt64.max, kind: .normal, data: []),
    ]

    static let payloads: [Message.Payload] = [
        .preVote(lastIndex: 5, lastTerm: 2),
        .preVoteResponse(granted: true),
        .vote(lastIndex: 1 << 40, lastTerm: 9, transfer: true),
        .voteResponse(granted: false),
        .append(prevIndex: 9, prevTerm: 3, entries: entries, commit: 8),
        .append(prevIndex: 0, prevTerm: 0, entries: [], commit: 0),
        .appendResponse(index: 12, reject: true, hint: 7),
        .heartbeat(commit: 4, context: [0xFF, 0]),
        .heartbeatResponse(context: []),
        .installSnapshot(snapshot),
        .snapshotResponse(index: 77),
        .timeoutNow,
        .readIndex(context: [1, 2, 3]),
        .readIndexResponse(index: 99, context: [4]),
    ]

    static var messages: [Message] {
        payloads.map { Message(from: 1, to: UInt64.max, term: 1 << 33, payload: $0) }
    }

    @Test func roundTrips() throws {
        for m in Self.messages { #expect(try Message(wire: m.wireBytes()) == m) }
        for e in Self.entries { #expect(try Entry(wire: e.wireBytes()) == e) }
        for h in [HardState(), HardState(term: 9, vote: 3, commit: 100)] {
            #expect(try HardState(wire: h.wireBytes()) == h)
        }
        #expect(try Snapshot(wire: Self.snapshot.wireBytes()) == Self.snapshot)
        for c in [ConfigChange.addVoter(1), .addLearner(2), .promoteLearner(3), .removeNode(4)] {
            #expect(try ConfigChange(wire: c.wireBytes()) == c)
        }
    }

    @Test func everyTruncationThrows() {
        for m in Self.messages {
            let bytes = m.wireBytes()
            for n in 0..<bytes.count {
                #expect(throws: WireError.self) { try Message(wire: Array(bytes[..<n])) }
            }
            #expect(throws: WireError.trailingBytes(count: 1)) { try Message(wire: bytes + [0]) }
        }
    }

    @Test func specificErrors() {
        #expect(throws: WireError.unsupportedVersion(7)) { try Message(wire: [7]) }
        #expect(throws: WireError.truncated(offset: 0)) { try Message(wire: []) }
        // An 11-byte varint overflows 64 bits.
        #expect(throws: WireError.varintOverflow(offset: 1)) {
            try Message(wire: [1] + Array(repeating: 0xFF, count: 10) + [1])
        }
        // A byte string claiming 2^40 bytes must not allocate: it is just truncated.
        #expect(throws: WireError.self) {
            try Message(wire: [1, 1, 2, 3, 11, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20])
        }
        #expect(throws: WireError.unknownTag(what: "message", tag: 200, offset: 4)) {
            try Message(wire: [1, 1, 2, 3, 200])
        }
        #expect(throws: WireError.invalidValue(what: "bool", offset: 5)) { try Message(wire: [1, 1, 2, 3, 1, 2]) }
    }

    /// Random bytes never crash the decoder.
    @Test func fuzzRandomBytes() {
        var rng = Xoshiro(seed: 0xF022)
        var decoded = 0
        for _ in 0..<50_000 {
            let n = rng.below(64)
            var bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if rng.chance(0.5), !bytes.isEmpty { bytes[0] = 1 }  // get past the version byte
            if (try? Message(wire: bytes)) != nil { decoded += 1 }
            _ = try? Entry(wire: bytes)
            _ = try? HardState(wire: bytes)
            _ = try? Snapshot(wire: bytes)
            _ = try? ConfigChange(wire: bytes)
        }
        #expect(decoded < 50_000)
    }

    /// Mutated valid encodings never crash, and whatever decodes re-encodes identically.
    @Test func fuzzMutations() throws {
        var rng = Xoshiro(seed: 0xBEEF)
        for _ in 0..<20_000 {
            let original = Self.messages[rng.below(Self.messages.count)].wireBytes()
            var bytes = original
            for _ in 0..<(1 + rng.below(4)) {
                switch rng.below(3) {
                case 0: bytes[rng.below(bytes.count)] = UInt8(truncatingIfNeeded: rng.next())
                case 1: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: rng.below(bytes.count + 1))
                default: if bytes.count > 1 { bytes.remove(at: rng.below(bytes.count)) }
                }
            }
            if let m = try? Message(wire: bytes) {
                #expect(try Message(wire: m.wireBytes()) == m)
            }
        }
    }
}
