import Foundation
import Testing
@testable import SpecolaCoordinator
import CooperativePoolWatch

@Suite(.watchesCooperativePool) struct DenyListTests {
    /// A certificate's serial reads as the lower-case hex the deny list compares, whatever its leading zeros.
    @Test func aSerialReadsAsItsNormalizedHex() {
        let cases: [[UInt8]] = [[], [0], [0, 0], [0x0a], [0x00, 0x0a, 0xbc], [0x7f, 0x00, 0x01], [0x10], [0x01, 0x00]]
            + (0..<50).map { _ in (0..<Int.random(in: 1...20)).map { _ in UInt8.random(in: 0...255) } }
        for bytes in cases {
            let colons = bytes.map { String(format: "%02X", $0) }.joined(separator: ":")
            #expect(DenyList.serial(bytes: bytes) == DenyList.normalized(serial: colons), "\(colons)")
        }
        #expect(DenyList.serial(bytes: [0x00, 0x0a, 0xbc]) == "abc")
        #expect(DenyList.serial(bytes: [0x10]) == "10")
    }
}
