/// Why bytes could not be decoded into a Raft value. Decoding never traps on bad input.
public enum WireError: Error, Sendable, Equatable {
    /// The input ended in the middle of a value at this byte offset.
    case truncated(offset: Int)
    /// A variable-length integer was longer than 64 bits at this offset.
    case varintOverflow(offset: Int)
    /// An enum tag not defined by this format version.
    case unknownTag(what: String, tag: UInt64, offset: Int)
    /// The leading format byte is not one this build understands.
    case unsupportedVersion(UInt8)
    /// A well-formed value was followed by this many extra bytes.
    case trailingBytes(count: Int)
    /// A field held a value the format forbids (for example a bool that is not 0 or 1).
    case invalidValue(what: String, offset: Int)
}

/// The compact binary format for Raft values: a format byte, then fields as LEB128
/// varints, length-prefixed byte strings and one-byte tags. Shared by the peer transport
/// and the driver's storage so both speak exactly one encoding.
enum Wire {
    static let version: UInt8 = 1

    /// Appends fields to a byte buffer.
    struct Writer {
        var bytes: [UInt8] = []

        mutating func varint(_ value: UInt64) {
            var v = value
            while v >= 0x80 {
                bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
                v >>= 7
            }
            bytes.append(UInt8(v))
        }
        mutating func byte(_ value: UInt8) { bytes.append(value) }
        mutating func bool(_ value: Bool) { bytes.append(value ? 1 : 0) }
        mutating func data(_ value: [UInt8]) {
            varint(UInt64(value.count))
            bytes.append(contentsOf: value)
        }
        mutating func nodes(_ value: Set<NodeID>) {
            varint(UInt64(value.count))
            for id in value.sorted() { varint(id) }
        }
        mutating func entry(_ e: Entry) {
            varint(e.term)
            varint(e.index)
            byte(e.kind.rawValue)
            data(e.data)
        }
        mutating func hardState(_ h: HardState) {
            varint(h.term)
            varint(h.vote ?? 0)
            varint(h.commit)
        }
        mutating func snapshot(_ s: Snapshot) {
            varint(s.meta.index)
            varint(s.meta.term)
            nodes(s.meta.config.voters)
            nodes(s.meta.config.learners)
            data(s.data)
        }
        mutating func configChange(_ c: ConfigChange) {
            switch c {
            case .addVoter: byte(0)
            case .addLearner: byte(1)
            case .promoteLearner: byte(2)
            case .removeNode: byte(3)
            }
            varint(c.node)
        }
        mutating func message(_ m: Message) {
            varint(m.from)
            varint(m.to)
            varint(m.term)
            switch m.payload {
            case .preVote(let lastIndex, let lastTerm):
                byte(0); varint(lastIndex); varint(lastTerm)
            case .preVoteResponse(let granted):
                byte(1); bool(granted)
            case .vote(let lastIndex, let lastTerm, let transfer):
                byte(2); varint(lastIndex); varint(lastTerm); bool(transfer)
            case .voteResponse(let granted):
                byte(3); bool(granted)
            case .append(let prevIndex, let prevTerm, let entries, let commit):
                byte(4); varint(prevIndex); varint(prevTerm); varint(commit)
                varint(UInt64(entries.count))
                for e in entries { entry(e) }
            case .appendResponse(let index, let reject, let hint):
                byte(5); varint(index); bool(reject); varint(hint)
            case .heartbeat(let commit, let context):
                byte(6); varint(commit); data(context)
            case .heartbeatResponse(let context):
                byte(7); data(context)
            case .installSnapshot(let s):
                byte(8); snapshot(s)
            case .snapshotResponse(let index):
                byte(9); varint(index)
            case .timeoutNow:
                byte(10)
            case .readIndex(let context):
                byte(11); data(context)
            case .readIndexResponse(let index, let context):
                byte(12); varint(index); data(context)
            }
        }
    }

    /// Reads fields back, checking every length against the bytes actually present.
    struct Reader {
        let bytes: [UInt8]
        var offset = 0

        var remaining: Int { bytes.count - offset }

        mutating func byte() throws(WireError) -> UInt8 {
            guard offset < bytes.count else { throw .truncated(offset: offset) }
            defer { offset += 1 }
            return bytes[offset]
        }
        mutating func varint() throws(WireError) -> UInt64 {
            let start = offset
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                let b = try byte()
                // The tenth byte may only contribute the top bit.
                if shift == 63 && b > 1 { throw .varintOverflow(offset: start) }
                result |= UInt64(b & 0x7F) << shift
                if b & 0x80 == 0 { return result }
                shift += 7
                if shift > 63 { throw .varintOverflow(offset: start) }
            }
        }
        mutating func bool() throws(WireError) -> Bool {
            let at = offset
            switch try byte() {
            case 0: return false
            case 1: return true
            default: throw .invalidValue(what: "bool", offset: at)
            }
        }
        /// A count of items each at least `minSize` bytes long, bounded by what is left,
        /// so a forged length cannot make us allocate gigabytes.
        mutating func count(minSize: Int) throws(WireError) -> Int {
            let at = offset
            let n = try varint()
            guard n <= UInt64(remaining / max(minSize, 1)) else { throw .truncated(offset: at) }
            return Int(n)
        }
        mutating func data() throws(WireError) -> [UInt8] {
            let n = try count(minSize: 1)
            defer { offset += n }
            return Array(bytes[offset..<offset + n])
        }
        mutating func nodes() throws(WireError) -> Set<NodeID> {
            let n = try count(minSize: 1)
            var result: Set<NodeID> = []
            for _ in 0..<n {
                let at = offset
                let id = try varint()
                guard id != 0, result.insert(id).inserted else { throw .invalidValue(what: "node set", offset: at) }
            }
            return result
        }
        mutating func entry() throws(WireError) -> Entry {
            let term = try varint()
            let index = try varint()
            let at = offset
            let rawKind = try byte()
            guard let kind = Entry.Kind(rawValue: rawKind) else {
                throw .unknownTag(what: "entry kind", tag: UInt64(rawKind), offset: at)
            }
            return Entry(term: term, index: index, kind: kind, data: try data())
        }
        mutating func hardState() throws(WireError) -> HardState {
            let term = try varint()
            let vote = try varint()
            return HardState(term: term, vote: vote == 0 ? nil : vote, commit: try varint())
        }
        mutating func snapshot() throws(WireError) -> Snapshot {
            let index = try varint()
            let term = try varint()
            let voters = try nodes()
            let learners = try nodes()
            let config = ConfigState(voters: voters, learners: learners)
            return Snapshot(meta: SnapshotMeta(index: index, term: term, config: config), data: try data())
        }
        mutating func configChange() throws(WireError) -> ConfigChange {
            let at = offset
            let tag = try byte()
            let node = try varint()
            guard node != 0 else { throw .invalidValue(what: "node id", offset: at + 1) }
            switch tag {
            case 0: return .addVoter(node)
            case 1: return .addLearner(node)
            case 2: return .promoteLearner(node)
            case 3: return .removeNode(node)
            default: throw .unknownTag(what: "config change", tag: UInt64(tag), offset: at)
            }
        }
        mutating func message() throws(WireError) -> Message {
            let from = try varint()
            let to = try varint()
            let term = try varint()
            let at = offset
            let tag = try byte()
            let payload: Message.Payload
            switch tag {
            case 0: payload = .preVote(lastIndex: try varint(), lastTerm: try varint())
            case 1: payload = .preVoteResponse(granted: try bool())
            case 2: payload = .vote(lastIndex: try varint(), lastTerm: try varint(), transfer: try bool())
            case 3: payload = .voteResponse(granted: try bool())
            case 4:
                let prevIndex = try varint()
                let prevTerm = try varint()
                let commit = try varint()
                // An encoded entry is at least 4 bytes (term, index, kind, length).
                let n = try count(minSize: 4)
                var entries: [Entry] = []
                entries.reserveCapacity(n)
                for _ in 0..<n { entries.append(try entry()) }
                payload = .append(prevIndex: prevIndex, prevTerm: prevTerm, entries: entries, commit: commit)
            case 5: payload = .appendResponse(index: try varint(), reject: try bool(), hint: try varint())
            case 6: payload = .heartbeat(commit: try varint(), context: try data())
            case 7: payload = .heartbeatResponse(context: try data())
            case 8: payload = .installSnapshot(try snapshot())
            case 9: payload = .snapshotResponse(index: try varint())
            case 10: payload = .timeoutNow
            case 11: payload = .readIndex(context: try data())
            case 12: payload = .readIndexResponse(index: try varint(), context: try data())
            default: throw .unknownTag(what: "message", tag: UInt64(tag), offset: at)
            }
            guard from != 0, to != 0 else { throw .invalidValue(what: "node id", offset: 1) }
            return Message(from: from, to: to, term: term, payload: payload)
        }
    }

    static func encode(_ body: (inout Writer) -> Void) -> [UInt8] {
        var w = Writer()
        w.byte(version)
        body(&w)
        return w.bytes
    }

    static func decode<T>(_ bytes: [UInt8], _ body: (inout Reader) throws(WireError) -> T) throws(WireError) -> T {
        var r = Reader(bytes: bytes)
        let v = try r.byte()
        guard v == version else { throw .unsupportedVersion(v) }
        let value = try body(&r)
        guard r.remaining == 0 else { throw .trailingBytes(count: r.remaining) }
        return value
    }
}

extension Message {
    /// The binary encoding the peer transport sends.
    public func wireBytes() -> [UInt8] { Wire.encode { $0.message(self) } }
    /// Decodes `wireBytes()` output; throws on any truncated, oversized or unknown input.
    public init(wire bytes: [UInt8]) throws(WireError) { self = try Wire.decode(bytes) { (r) throws(WireError) in try r.message() } }
}

extension Entry {
    public func wireBytes() -> [UInt8] { Wire.encode { $0.entry(self) } }
    public init(wire bytes: [UInt8]) throws(WireError) { self = try Wire.decode(bytes) { (r) throws(WireError) in try r.entry() } }
}

extension HardState {
    public func wireBytes() -> [UInt8] { Wire.encode { $0.hardState(self) } }
    public init(wire bytes: [UInt8]) throws(WireError) { self = try Wire.decode(bytes) { (r) throws(WireError) in try r.hardState() } }
}

extension Snapshot {
    public func wireBytes() -> [UInt8] { Wire.encode { $0.snapshot(self) } }
    public init(wire bytes: [UInt8]) throws(WireError) { self = try Wire.decode(bytes) { (r) throws(WireError) in try r.snapshot() } }
}

extension ConfigChange {
    public func wireBytes() -> [UInt8] { Wire.encode { $0.configChange(self) } }
    public init(wire bytes: [UInt8]) throws(WireError) { self = try Wire.decode(bytes) { (r) throws(WireError) in try r.configChange() } }
}
