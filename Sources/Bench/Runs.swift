import Foundation
import GRPCCore
import SpecolaProtocol
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Result of a fixed-duration closed-loop write run.
struct LoadResult: Sendable {
    var ops: Int
    var errors: Int
    var seconds: Double
    var p50Ms: Double
    var p99Ms: Double

    var line: String {
        String(format: "RESULT ops=%d errors=%d seconds=%.2f throughput=%.1f p50_ms=%.3f p99_ms=%.3f",
               ops, errors, seconds, Double(ops) / seconds, p50Ms, p99Ms)
    }
}

/// Shared between the writers and the killer of one failover round.
final class FailoverMarks: Sendable {
    let killedAt = Mutex<ContinuousClock.Instant?>(nil)
    let recovered = Mutex<ContinuousClock.Instant?>(nil)
    let flowing = Mutex(0)
}

enum Runs {
    static func callOptions(timeout: Duration, waitForReady: Bool) -> CallOptions {
        var options = CallOptions.defaults
        options.timeout = timeout
        options.waitForReady = waitForReady
        return options
    }

    static func value(bytes: Int) -> Data { Data(repeating: UInt8(ascii: "v"), count: bytes) }

    static func ms(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }

    /// `clients` workers each write back to back for `duration` after a short warm-up;
    /// only writes that started inside the window count.
    /// `staleReads` measures stale gets instead of puts: the RPC path without Raft.
    static func load(pool: KVPool, clients: Int, duration: Duration, warmup: Duration, valueBytes: Int,
                     staleReads: Bool = false) async throws -> LoadResult {
        let value = value(bytes: valueBytes)
        let options = callOptions(timeout: .seconds(5), waitForReady: true)
        let clock = ContinuousClock()
        let start = clock.now + warmup
        let end = start + duration
        let perWorker = await withTaskGroup(of: ([Double], Int).self) { group in
            for worker in 0..<clients {
                group.addTask {
                    var latencies: [Double] = []
                    latencies.reserveCapacity(8_192)
                    var errors = 0
                    var n = 0
                    while true {
                        let began = clock.now
                        if began >= end { break }
                        n += 1
                        // A bounded key space: etcd keeps every revision, Specola the latest.
                        let key = "bench/\(worker)/\(n % 64)"
                        do {
                            if staleReads {
                                try await pool.staleGet(key: key, options: options)
                            } else {
                                try await pool.put(key: key, value: value, options: options)
                            }
                            if began >= start { latencies.append(ms(clock.now - began)) }
                        } catch {
                            if began >= start { errors += 1 }
                            if errors == 1 { FileHandle.standardError.write(Data("specola-bench: first failed write: \(error)\n".utf8)) }
                            try? await Task.sleep(for: .milliseconds(5))
                        }
                    }
                    return (latencies, errors)
                }
            }
            var all: [([Double], Int)] = []
            for await part in group { all.append(part) }
            return all
        }
        let samples = perWorker.flatMap(\.0).sorted()
        func quantile(_ q: Double) -> Double {
            samples.isEmpty ? .nan : samples[min(samples.count - 1, Int(Double(samples.count) * q))]
        }
        return LoadResult(ops: samples.count, errors: perWorker.map(\.1).reduce(0, +), seconds: ms(duration) / 1000,
                          p50Ms: quantile(0.5), p99Ms: quantile(0.99))
    }

    /// Writes with short timeouts, kills `pid` (the leader) with SIGKILL once writes
    /// flow, and returns the time from the kill to the first successful write that
    /// was sent after it.
    static func failover(pool: KVPool, leader: HostPort, pid: pid_t, writers: Int, callTimeout: Duration,
                         limit: Duration) async throws -> Duration {
        pool.prefer(leader)
        // Fail fast on a dead connection instead of waiting for it to come back.
        let options = callOptions(timeout: callTimeout, waitForReady: false)
        let value = value(bytes: 128)
        let clock = ContinuousClock()
        let marks = FailoverMarks()
        let deadline = clock.now + limit

        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<writers {
                group.addTask {
                    var n = 0
                    while marks.recovered.withLock({ $0 == nil }) && clock.now < deadline {
                        n += 1
                        let began = clock.now
                        do {
                            try await pool.put(key: "failover/\(worker)/\(n % 16)", value: value, options: options)
                            let done = clock.now
                            let killTime = marks.killedAt.withLock { $0 }
                            if let killTime, began >= killTime {
                                marks.recovered.withLock { if $0 == nil { $0 = done } }
                            } else if killTime == nil {
                                marks.flowing.withLock { $0 += 1 }
                            }
                        } catch {
                            try? await Task.sleep(for: .milliseconds(2))
                        }
                    }
                }
            }
            group.addTask {
                // Kill only after writes reach the leader steadily.
                try await Task.sleep(for: .milliseconds(500))
                while marks.flowing.withLock({ $0 }) < 50 && clock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                guard pool.target == leader else {
                    throw BenchError("writes go to \(pool.target), not to the leader \(leader); is the leader right?")
                }
                marks.killedAt.withLock { $0 = clock.now }
                guard kill(pid, SIGKILL) == 0 else { throw BenchError("cannot kill pid \(pid): errno \(errno)") }
            }
            try await group.waitForAll()
        }
        guard let killTime = marks.killedAt.withLock({ $0 }), let back = marks.recovered.withLock({ $0 }) else {
            throw BenchError("no write succeeded within \(limit) of the kill")
        }
        return back - killTime
    }

    /// Specola: the leader's address, as a replica reports it.
    static func leader(pool: KVPool, limit: Duration) async throws -> HostPort {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            for endpoint in pool.endpoints {
                if let status = try? await pool.status(of: endpoint),
                    let leader = HostPort(parsing: status.leaderAddress), pool.endpoints.contains(leader)
                {
                    return leader
                }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw BenchError("no Specola replica knows a leader after \(limit)")
    }

    /// Specola: `endpoint` follows a leader and has applied all the leader has committed.
    static func caughtUp(pool: KVPool, endpoint: HostPort, limit: Duration) async throws {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if let mine = try? await pool.status(of: endpoint), let leader = HostPort(parsing: mine.leaderAddress),
                let theirs = try? await pool.status(of: leader), mine.appliedIndex >= theirs.commitIndex
            {
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw BenchError("\(endpoint) did not catch up within \(limit)")
    }
}
