import CooperativePoolWatch
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
}
