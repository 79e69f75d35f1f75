/// How often a failed task is tried again and how long to wait in between.
public struct RetryPolicy: Sendable, Hashable, Codable {
    /// Further attempts after the first failure; 0 means never retry.
    public var attempts: Int
    /// Delay before the first retry, in seconds; doubled for each further one.
    public var backoffSeconds: Int64
    /// Upper bound for the doubled delay, in seconds.
    public var maxBackoffSeconds: Int64

    /// Creates a policy.
    public init(attempts: Int = 0, backoffSeconds: Int64 = 10, maxBackoffSeconds: Int64 = 300) {
        self.attempts = attempts
        self.backoffSeconds = backoffSeconds
        self.maxBackoffSeconds = maxBackoffSeconds
    }

    /// No retries.
    public static let none = RetryPolicy()

    /// Delay before retry number `retry` (1-based), or nil when the attempts are used up.
    public func delay(beforeRetry retry: Int) -> Int64? {
        guard retry >= 1, retry <= attempts else { return nil }
        var delay = backoffSeconds
        for _ in 1..<retry where delay < maxBackoffSeconds { delay *= 2 }
        return min(delay, maxBackoffSeconds)
    }
}
