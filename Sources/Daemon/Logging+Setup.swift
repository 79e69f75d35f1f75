import Foundation
import Logging

/// Process-level logging set-up for the three executables (libraries never bootstrap).
public enum LogSetup {
    /// Logs go to stderr, which journald collects under systemd.
    public static func bootstrap(level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }

    public static func level(_ text: String?) -> Logger.Level {
        text.flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? .info
    }
}
