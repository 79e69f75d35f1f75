import Crypto
import Foundation
import Logging
import SpecolaClusterCore
import SpecolaProtocol
import SwiftProtobuf
import Synchronization

/// Collects audit records and commits them in batches through Raft (one command per batch, at
/// most every `interval`), so auditing costs no extra round trip per call. Every record is also
/// logged at once as one JSON line (`audit {...}`) for the journal and a SIEM. Refusals pass a
/// per-principal rate limit first (`RefusalLimiter`), so a refused caller cannot flood the log.
/// A batch that cannot be committed (this replica is not the leader, or lost leadership) stays
/// in the journal only; that is the known gap.
final class AuditRecorder: Sendable {
    struct Settings: Sendable {
        var retentionMs: Int64 = 90 * 86_400_000
        var maxRecords = 100_000
        var refusalBurst = 20
        var interval: Duration = .milliseconds(200)
        var maxBatch = 2_000
    }

    private struct State {
        var buffer: [Specola_V1_AuditRecord] = []
        var limiter: RefusalLimiter
        var waiter: CheckedContinuation<Void, Never>?
    }

    let settings: Settings
    let logger: Logger
    private let state: Mutex<State>

    init(settings: Settings, logger: Logger) {
        self.settings = settings
        self.logger = logger
        state = Mutex(State(limiter: RefusalLimiter(burst: settings.refusalBurst)))
    }

    static func hash(_ request: (any SwiftProtobuf.Message)?) -> String {
        guard let request, let bytes = try? request.serializedBytes() as [UInt8] else { return "" }
        // Lower-case hex by table: String(format:) per byte cost more than the hash on every audited write.
        let digits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        hex.reserveCapacity(64)
        for byte in SHA256.hash(data: bytes) {
            hex.append(digits[Int(byte >> 4)])
            hex.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: hex, as: UTF8.self)
    }

    func record(_ principal: Principal, _ verb: Verb, _ resource: Resource, outcome: String, detail: String,
                request: (any SwiftProtobuf.Message)?) {
        let record = Specola_V1_AuditRecord.with {
            $0.atUnixMs = WallClock.nowUnixMs()
            $0.principal = principal.description
            $0.verb = verb.rawValue
            $0.resource = resource.description
            $0.outcome = outcome
            $0.detail = String(detail.prefix(1_000))
            $0.requestHash = Self.hash(request)
            switch principal.proof {
            case .certificate: $0.proof = "certificate"
            case .token(let issuer): $0.proof = "token:\(issuer)"
            }
        }
        logger.notice("audit \((try? record.jsonString()) ?? "{}")")
        state.withLock { state in
            if outcome == "refused" {
                guard let admitted = state.limiter.admit(record) else { return }
                state.buffer.append(admitted)
            } else {
                state.buffer.append(record)
            }
        }
    }

    /// Commits buffered records every `interval` while this replica leads.
    func run(replica: Replica) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: settings.interval)
            await flush(replica: replica)
        }
    }

    func flush(replica: Replica, all: Bool = false) async {
        let now = WallClock.nowUnixMs()
        state.withLock { $0.buffer.append(contentsOf: $0.limiter.drain(now: now, all: all)) }
        // Batches until the buffer is empty, so a burst of calls never outgrows the flushes.
        while true {
            let batch: [Specola_V1_AuditRecord] = state.withLock { state in
                let batch = Array(state.buffer.prefix(settings.maxBatch))
                state.buffer.removeFirst(batch.count)
                return batch
            }
            guard !batch.isEmpty else { return }
            guard await replica.isLeader else {
                logger.debug("audit records kept in the journal only: this replica is not the leader", metadata: ["audit.records": "\(batch.count)"])
                continue
            }
            do {
                _ = try await replica.propose(.audit(batch, dropBefore: now - settings.retentionMs, maxRecords: settings.maxRecords))
            } catch {
                logger.warning("audit records not committed; they are in this journal only", metadata: [
                    "audit.records": "\(batch.count)", "error": "\(error)",
                ])
            }
        }
    }
}
