import Foundation
import Logging

/// Collects log messages of `RecordingLogHandler.lowestLevel` and above.
public final class RecordedLogs: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []
    public init() {}
    public var messages: [String] { lock.withLock { stored } }
    public func append(_ message: String) { lock.withLock { stored.append(message) } }
}

public struct RecordingLogHandler: LogHandler {
    public let records: RecordedLogs
    public var lowestLevel: Logger.Level = .warning
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .trace
    /// With metadata, each record is the message followed by its metadata (`key=value`, sorted).
    public var withMetadata = false

    public init(records: RecordedLogs, lowestLevel: Logger.Level = .warning, withMetadata: Bool = false) {
        self.records = records
        self.lowestLevel = lowestLevel
        self.withMetadata = withMetadata
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        guard event.level >= lowestLevel else { return }
        var text = event.message.description
        if withMetadata, let extra = event.metadata {
            text += " " + metadata.merging(extra) { $1 }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        }
        records.append(text)
    }
}
