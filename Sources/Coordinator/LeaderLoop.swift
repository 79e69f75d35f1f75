/// The loop a leader controller runs: a pass on a timer and whenever nudged,
/// only while this replica leads, and only once a read barrier has shown it
/// everything the previous leader committed.
struct LeaderLoop: Sendable {
    let replica: Replica
    /// Longest time between two passes when nothing nudges.
    let interval: Duration
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    init(replica: Replica, interval: Duration) {
        self.replica = replica
        self.interval = interval
        (wakeups, wake) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Asks for a pass soon.
    func nudge() { wake.yield() }

    /// Runs until cancelled (call it once). `pass` is told how long this replica has led;
    /// `following` runs on each wakeup while it does not lead.
    func run(following: () -> Void = {}, _ pass: (_ leaderFor: Duration) async -> Void) async {
        let ticker = Task { [wake, interval] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                wake.yield()
            }
        }
        defer { ticker.cancel() }
        var leaderSince: ContinuousClock.Instant?
        for await _ in wakeups {
            guard await replica.isLeader else {
                leaderSince = nil
                following()
                continue
            }
            if leaderSince == nil {
                do { try await replica.readBarrier() } catch { continue }
                leaderSince = .now
            }
            await pass(.now - leaderSince!)
        }
    }
}
