import Testing
import SpecolaDevSupport

/// Ports for the processes a test starts: several asked for at once never repeat. Probed one
/// after another they can (500 probes repeat one with a probability of about 99%), and a
/// replica given the same port for two listeners fails to start.
@Suite struct LoopbackPortTests {
    @Test func portsAskedForTogetherAreDifferent() {
        let ports = LoopbackPort.free(500, on: "127.0.0.1")
        #expect(ports.count == 500)
        #expect(Set(ports).count == 500)
        #expect(ports.allSatisfy { (1...65_535).contains($0) })
    }
}
