import CooperativePoolWatch
import Foundation

/// Locates files of the package from the test source, so tests work in any checkout without bundled resources.
enum TestFiles {
    /// The package root: two levels above this file's folder.
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func source(_ relative: String) -> URL { packageRoot.appendingPathComponent("Sources/Jobs/\(relative)") }

    static func text(_ relative: String) throws -> String { try String(contentsOf: source(relative), encoding: .utf8) }
}

/// SplitMix64: a tiny seeded generator, so that random simulations replay exactly from their seed.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
