import Foundation
import GRPCCore
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
    /// Unary calls are checked before and after their handler; only streams get a watch that cuts
    /// them mid-call. A streaming RPC added to the proto without joining the set would stay open
    /// after its certificate is revoked.
    @Test func everyStreamingRPCIsWatchedForRevocation() throws {
        let proto = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Sources/Protocol/specola_services.proto")
        var service = ""
        var streaming: Set<String> = []
        for line in try String(contentsOf: proto, encoding: .utf8).split(separator: "\n") {
            let words = line.split(whereSeparator: { " ({;".contains($0) })
            if words.first == "service", words.count > 1 { service = String(words[1]) }
            if words.first == "rpc", words.count > 1, line.contains("stream ") {
                streaming.insert("specola.v1.\(service)/\(words[1])")
            }
        }
        #expect(!streaming.isEmpty)
        #expect(Set(RevocationInterceptor.streamingMethods.map(\.fullyQualifiedMethod)) == streaming)
    }
}
