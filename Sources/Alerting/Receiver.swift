/// A place notifications go: a chat webhook or an e-mail server.
public protocol Receiver: Sendable {
    /// The configured name that routes refer to.
    var name: String { get }
    /// Sends one notification once. Throws a `DeliveryError` that says whether trying again can help.
    func send(_ notification: AlertNotification) async throws
}

/// A notification did not reach its receiver. The message names the receiver, the server and
/// its answer; it never contains a password or a webhook URL's secret path.
public struct DeliveryError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of failure; grows without breaking callers.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        public let rawValue: String
        private init(_ rawValue: String) { self.rawValue = rawValue }
        /// No TCP connection (refused, unreachable, name not found).
        public static let connect = Code("connect")
        /// No complete answer within the receiver's timeout.
        public static let timeout = Code("timeout")
        /// The TLS handshake failed (untrusted certificate, wrong name, no common protocol).
        public static let tls = Code("tls")
        /// The webhook answered with an HTTP error status.
        public static let httpStatus = Code("http-status")
        /// The SMTP server refused a step.
        public static let smtpReply = Code("smtp-reply")
        /// The peer broke the protocol (a malformed or missing answer).
        public static let protocolViolation = Code("protocol")
        /// The receiver's configuration cannot work (bad URL, TLS required but not offered).
        public static let configuration = Code("configuration")
        /// The delivery was cancelled, e.g. because this coordinator stopped being leader.
        public static let cancelled = Code("cancelled")
        public var description: String { rawValue }
    }

    public var code: Code
    public var message: String
    /// Whether another attempt may succeed (a timeout, a 5xx, a 429, an SMTP 4xx).
    public var isRetryable: Bool
    /// How long the server asked us to wait (HTTP `Retry-After`).
    public var retryAfter: Duration?

    public init(_ code: Code, _ message: String, retryable: Bool, retryAfter: Duration? = nil) {
        self.code = code
        self.message = message
        isRetryable = retryable
        self.retryAfter = retryAfter
    }

    public var description: String { message }
}
