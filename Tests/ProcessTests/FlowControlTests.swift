import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SpecolaProtocol
import TestSupport
import Testing
import CooperativePoolWatch

/// Large writes against real replicas: bounded by bytes, refused one by one, and a snapshot
/// larger than any gRPC message still reaches a follower that fell behind.
@Suite(.serialized, .processTest, .watchesCooperativePool) struct FlowControlTests {
    static let megabyte = Data(repeating: 0x5A, count: (1 << 20) - 64)

    static func put(_ pool: ClientPool, _ endpoint: HostPort, key: String, value: Data, timeout: Duration = .seconds(30))
        async throws -> Specola_V1_KvWriteResponse {
        try await pool.call(endpoint, timeout: timeout) { client, options in
            try await Specola_V1_KV.Client(wrapping: client).put(.with { $0.key = key; $0.value = value }, options: options)
        }
    }

    /// Sets `snapshotEvery` in every replica's config before the group starts.
    static func compactEvery(_ entries: Int, _ group: ReplicaGroup) throws {
        for id in group.ids {
            let path = group.member(id).configPath
            let text = try String(contentsOfFile: path, encoding: .utf8)
            let raft = "raft: {tickMs: \(group.tickMs), electionTicks: \(group.electionTicks)"
            #expect(text.contains(raft))
            try text.replacingOccurrences(of: raft, with: raft + ", snapshotEvery: \(entries)")
                .write(toFile: path, atomically: true, encoding: .utf8)
        }
    }

    /// The answers a replica gives on its own, and the client's own deadline passing (on a hogged
    /// machine 160 MiB through one TLS connection of a debug build can take longer than it);
    /// anything else is the transport failing the call.
    static let answers: Set<String> = ["ok", "refused", "redirected", "replaced", "timed out", "client deadline"]

    static func answer(_ error: RPCError) -> String {
        let notExecuted = error.metadata[stringValues: "specola-not-executed"].contains { _ in true }
        switch error.code {
        case .resourceExhausted where notExecuted && error.metadata[stringValues: "grpc-retry-pushback-ms"].contains { _ in true }:
            return "refused"
        case .unavailable where notExecuted: return "redirected"
        case .aborted where error.message.contains("did not happen"): return "replaced"
        case .deadlineExceeded where error.message.contains("did not complete in time"): return "timed out"
        case .deadlineExceeded where error.message == "RPC timed out before completing": return "client deadline"
        default: return "\(error.code): \(error.message)"
        }
    }

    /// 160 concurrent 1 MiB puts on one connection: each is answered on its own (written, or
    /// refused with RESOURCE_EXHAUSTED and not executed); the connection is never torn down.
    @Test func aBurstOfLargeWritesIsAnsweredRequestByRequest() async throws {
        try await ReplicaGroup.with(size: 3) { group in
            let leader = try await group.waitForLeader()
            let endpoint = group.member(leader).endpoint
            let pool = ClientPool(tls: group.admin)
            defer { pool.close() }
            let kv = group.kvClient()
            #expect(await kv.put("burst/warmup", "x").value != nil)

            let all = await withTaskGroup(of: String.self) { tasks in
                for n in 0..<160 {
                    tasks.addTask {
                        do {
                            // HTTP/2 shares the connection fairly, so the 160 uploads finish close together:
                            // on a hogged machine a debug build needs over 60 s for all of them.
                            _ = try await Self.put(pool, endpoint, key: "burst/\(n)", value: Self.megabyte, timeout: .seconds(150))
                            return "ok"
                        } catch let error as RPCError {
                            return Self.answer(error)
                        } catch {
                            return "\(error)"
                        }
                    }
                }
                return await tasks.reduce(into: [String]()) { $0.append($1) }
            }
            let unexpected = all.filter { !Self.answers.contains($0) }
            print("160 concurrent 1 MiB puts:", Dictionary(grouping: all, by: { $0 }).mapValues(\.count).sorted { $0.key < $1.key })
            var libraryAssertion = false
            for id in group.ids where group.process(id)?.isRunning != true {
                let log = group.process(id)?.log ?? ""
                if log.contains(Self.http2DebugAssertion) {
                    // Seen about once in 20 runs on 2 cores with one of them hogged; a release build has no
                    // such assertion. The calls that replica was serving end with "Stream unexpectedly closed".
                    libraryAssertion = true
                    withKnownIssue("swift-nio-http2 1.46.0 asserts in debug builds when a DATA frame is flushed while control frames wait on an unwritable connection") {
                        Issue.record("replica c\(id) stopped on swift-nio-http2's debug assertion:\n\(Self.crashReport(log))")
                    }
                } else {
                    Issue.record("replica c\(id) exited during the burst:\n\(Self.crashReport(log))")
                }
            }
            let unexplained = libraryAssertion ? unexpected.filter { $0 != "unavailable: Stream unexpectedly closed." } : unexpected
            #expect(unexplained.isEmpty, "\(unexplained.count) puts failed otherwise, e.g. \(unexplained.prefix(3)); the replicas' last warnings:\n\(Self.lastWarnings(group))")
            #expect(all.contains("ok"))
            // Small writes still go through at once.
            let after = await kv.put("burst/after", "y", deadline: .seconds(10))
            #expect(after.value != nil, "\(after)")
        }
    }

    /// swift-nio-http2's `assert` in ControlFrameBuffer.processOutboundFrame (compiled out of release builds).
    static let http2DebugAssertion = "NIOHTTP2/ControlFrameBuffer.swift:59: Assertion failed: Received flush data frames while buffering control frames"

    /// The runtime's report of a crash in a replica's log (from "Fatal error" or "Program crashed"
    /// on, 60 lines), or the log's last 40 lines.
    static func crashReport(_ log: String) -> String {
        let lines = log.split(separator: "\n", omittingEmptySubsequences: false)
        guard let start = lines.firstIndex(where: { $0.contains("Fatal error") || $0.contains("Program crashed") || $0.contains("Assertion failed") || $0.contains("Precondition failed") })
        else { return lines.suffix(40).joined(separator: "\n") }
        return lines[max(0, start - 5)...].prefix(65).joined(separator: "\n")
    }

    /// Each replica's last warning, error and critical log lines, for a failure message.
    static func lastWarnings(_ group: ReplicaGroup) -> String {
        group.ids.map { id in
            let log = group.process(id)?.log ?? ""
            let lines = log.split(separator: "\n").filter { $0.contains("warning") || $0.contains("error") || $0.contains("critical") || $0.contains("Fatal") }
            return "c\(id):\n" + lines.suffix(15).joined(separator: "\n")
        }.joined(separator: "\n")
    }

    /// A follower down while the leader compacts past 70 MiB of values catches up from a
    /// snapshot larger than the 64 MiB a gRPC message may carry: it travels in pieces.
    @Test func aSnapshotLargerThanAGRPCMessageReachesAFollowerThatFellBehind() async throws {
        try await ReplicaGroup.with(size: 3, start: false) { group in
            try Self.compactEvery(20, group)
            try await group.startAll()
            let leader = try await group.waitForLeader()
            let lagging = group.ids.first { $0 != leader }!
            try await group.kill(lagging)
            let pool = ClientPool(tls: group.admin)
            defer { pool.close() }
            let kv = group.kvClient(attemptTimeout: .seconds(20))
            for n in 0..<70 {
                var value = Self.megabyte
                value.replaceSubrange(0..<8, with: withUnsafeBytes(of: UInt64(n).bigEndian, Array.init))
                let payload = value
                let written = await kv.call(deadline: .seconds(60)) { client, options in
                    try await Specola_V1_KV.Client(wrapping: client).put(.with { $0.key = "big/\(n)"; $0.value = payload }, options: options)
                }
                guard written.value != nil else { Issue.record("put big/\(n): \(written)"); return }
            }
            let target = try await group.status(try await group.waitForLeader(excluding: [lagging])).appliedIndex
            try await group.start(lagging)
            try await waitUntil("the follower to install the leader's snapshot", timeout: .seconds(90)) {
                (try? await group.status(lagging).appliedIndex) ?? 0 >= target
            }
            let stale = try await pool.call(group.member(lagging).endpoint, timeout: .seconds(10)) { client, options in
                try await Specola_V1_KV.Client(wrapping: client).get(.with { $0.key = "big/69"; $0.stale = true }, options: options)
            }
            #expect(stale.found)
            #expect(stale.kv.value.prefix(8) == Data(withUnsafeBytes(of: UInt64(69).bigEndian, Array.init)))
            #expect(stale.kv.value.count == Self.megabyte.count)
            let log = try String(contentsOfFile: group.process(lagging)!.logPath, encoding: .utf8)
            #expect(log.contains("state restored from a leader snapshot"), "the follower caught up without a snapshot")
        }
    }
}
