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
