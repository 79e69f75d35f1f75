import CooperativePoolWatch
import Foundation
import Logging
import Testing
@testable import SpecolaAgent

/// The agent's self-fence lease, with time passed in.
@Suite(.watchesCooperativePool) struct SelfFenceLeaseTests {
    let start = ContinuousClock.now

    @Test func noLeaseNoFence() {
        var lease = SelfFenceLease()
        #expect(lease.check(at: start + .seconds(3600)) == nil, "no leader ever announced a lease")
        lease.renew(at: start, length: .zero)
        #expect(lease.check(at: start + .seconds(3600)) == nil, "selfFenceAfter 0 turns it off")
    }

    @Test func silenceForTheLeaseFencesOnceAndContactResumes() {
        var lease = SelfFenceLease()
        lease.renew(at: start, length: .seconds(2))
        #expect(lease.nextCheck(after: start) == start + .seconds(2), "wakes exactly when the lease could run out")
        #expect(lease.check(at: start + .milliseconds(1_999)) == nil)
        #expect(lease.check(at: start + .seconds(2)) == .fence(silence: .seconds(2)))
        #expect(lease.isFenced)
        #expect(lease.check(at: start + .seconds(5)) == nil, "fenced once, not on every check")
        lease.renew(at: start + .seconds(6))
        #expect(lease.check(at: start + .seconds(6)) == .resume)
        #expect(lease.check(at: start + .seconds(7)) == nil)
    }

    @Test func aRenewalKeepsTheAnnouncedLength() {
        var lease = SelfFenceLease()
        lease.renew(at: start, length: .seconds(2))
        lease.renew(at: start + .seconds(1))
        #expect(lease.check(at: start + .milliseconds(2_500)) == nil, "renewed at 1 s, so it runs to 3 s")
        #expect(lease.check(at: start + .seconds(3)) == .fence(silence: .seconds(2)))
    }

    @Test func anAnswerToAnOlderHeartbeatNeverMovesTheLeaseBack() {
        var lease = SelfFenceLease()
        lease.renew(at: start + .seconds(2), length: .seconds(2))
        lease.renew(at: start + .seconds(1))
        #expect(lease.check(at: start + .milliseconds(3_999)) == nil)
        #expect(lease.check(at: start + .seconds(4)) == .fence(silence: .seconds(2)), "counts from the newer send")
    }

    /// A heartbeat's token is its send time: the ack that echoes it renews from then, not from its arrival.
    @Test func aLeaseTokenNamesTheHeartbeatsSendTime() throws {
        let sent = ContinuousClock.now
        let token = CoordinatorLink.leaseToken(sentAt: sent)
        let decoded = try #require(CoordinatorLink.sendInstant(ofLeaseToken: token, now: sent + .seconds(5)))
        #expect(abs((decoded - sent) / .nanoseconds(1)) <= 1)
        #expect(CoordinatorLink.sendInstant(ofLeaseToken: 0) == nil)
        #expect(CoordinatorLink.sendInstant(ofLeaseToken: UInt64.max) == nil, "a token from the future is never trusted")
    }

    @Test func theLeaseOnDiskCarriesItsAgeIntoTheNextProcess() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lease-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let now = ContinuousClock.now
        try LeaseRecord(renewedAt: now - .seconds(7), length: .seconds(20), now: now).save(to: dir)
        let loaded = try #require(LeaseRecord.load(from: dir))
        let (renewedAt, length) = try #require(loaded.restored(now: now))
        #expect(length == .seconds(20))
        // Time passing between the reads only makes the restored renewal older (a sooner fence).
        let error = (renewedAt - (now - .seconds(7))) / .milliseconds(1)
        #expect(error <= 1 && error > -2_000, "restored renewal is off by \(error) ms")
        var otherBoot = loaded
        otherBoot.kernelBootID = "another-boot"
        #expect(otherBoot.restored() == nil, "nothing survives a reboot, so neither does the lease")
    }

    /// The keeper the link renews and the watch checks: a new agent process over the same data
    /// directory fences when the old one's lease runs out, not a whole lease later.
    @Test func aRestartedAgentKeepsCountingFromTheLastRenewal() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("keeper-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let logger = Logger(label: "test.lease")
        let first = SelfFenceLeaseKeeper(dataDir: dir, logger: logger)
        #expect(first.check(at: start).step == nil, "no lease announced yet")
        first.renew(sentAt: start - .seconds(30), length: .seconds(20))
        guard case .fence(let silence)? = first.check(at: start).step else {
            Issue.record("30 s of silence on a 20 s lease must fence")
            return
        }
        #expect(silence >= .seconds(30))
        #expect(first.check(at: start).step == nil, "a fence is announced once")

        let restarted = SelfFenceLeaseKeeper(dataDir: dir, logger: logger)
        let expired = try #require(restarted.expiredFor(), "the restarted keeper carries the old renewal")
        #expect(expired >= .seconds(29))
        restarted.renew(sentAt: .now)
        #expect(restarted.expiredFor() == nil)
    }
}
