import SpecolaClusterCore
import SpecolaProtocol

/// What every leader-only controller shares: it wakes on a timer or when
/// nudged (wake-ups coalesce), acts only while this replica leads, and
/// starts acting only on everything the previous leader committed.
final class LeaderLoop: Sendable {
    let interval: Duration
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    init(interval: Duration) {
        self.interval = interval
        (wakeups, wake) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Asks for a pass soon.
    func nudge() { wake.yield() }

    /// Runs until cancelled. `pass` gets the time this replica became leader (Unix ms);
    /// `stepDown` runs once when leadership is lost; `follower` on every wake-up while not leading.
    func run(
        _ replica: any ClusterLog, pass: (_ leaderSinceUnixMs: Int64) async -> Void,
        stepDown: () -> Void = {}, follower: () -> Void = {}
    ) async {
        let ticker = Task { [wake, interval] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                wake.yield()
            }
        }
        defer { ticker.cancel() }
        var leaderSince: Int64?
        for await _ in wakeups {
            guard await replica.isLeader else {
                if leaderSince != nil { stepDown() }
                leaderSince = nil
                follower()
                continue
            }
            if leaderSince == nil {
                do { try await replica.readBarrier() } catch { continue }
                leaderSince = WallClock.nowUnixMs()
            }
            await pass(leaderSince!)
        }
    }
}
