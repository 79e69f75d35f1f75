import SpecolaAlerting
import Foundation

/// An RFC 5322 message, rendered for the SMTP `DATA` step.
struct EmailMessage: Sendable {
    var from: String
    var to: [String]
    var subject: String
    var body: String
    /// Without angle brackets: `key@domain`.
    var messageID: String
    var dateUnixMs: Int64
    var extraHeaders: [(String, String)] = []

    /// The message with CRLF line ends and dot-stuffing, ending in CRLF (the caller sends the final `.`).
    /// `needs8bit` tells the caller to send `BODY=8BITMIME`; without `allow8bit` a non-ASCII body goes base64.
    func rendered(allow8bit: Bool) -> (text: String, needs8bit: Bool) {
        let lines = normalizedLines(body)
        let isASCII = body.utf8.allSatisfy { $0 < 128 }
        let fitsSMTP = lines.allSatisfy { $0.utf8.count <= 998 }
        var headers = [
            ("From", from), ("To", to.joined(separator: ", ")), ("Subject", Self.encodedHeader(subject)),
            ("Date", UTCTime.rfc5322(dateUnixMs)), ("Message-ID", "<\(messageID)>"), ("MIME-Version", "1.0"),
            ("Content-Type", "text/plain; charset=utf-8"),
        ]
        headers += extraHeaders
        let bodyLines: [String]
        let needs8bit: Bool
        if isASCII && fitsSMTP {
            headers.append(("Content-Transfer-Encoding", "7bit"))
            (bodyLines, needs8bit) = (lines, false)
        } else if allow8bit && fitsSMTP {
            headers.append(("Content-Transfer-Encoding", "8bit"))
            (bodyLines, needs8bit) = (lines, true)
        } else {
            headers.append(("Content-Transfer-Encoding", "base64"))
            let encoded = Data(lines.joined(separator: "\r\n").utf8).base64EncodedString(options: [.lineLength76Characters])
            (bodyLines, needs8bit) = (normalizedLines(encoded), false)
        }
        let all = headers.map { "\($0.0): \($0.1)" } + [""] + bodyLines
        return (all.map(Self.dotStuffed).joined(separator: "\r\n") + "\r\n", needs8bit)
    }

    /// A line that starts with `.` gets another, so the server does not read it as the end of DATA (RFC 5321 4.5.2).
    static func dotStuffed(_ line: String) -> String { line.hasPrefix(".") ? "." + line : line }

    /// Splits on CRLF, lone LF or lone CR, so no bare line end reaches the server.
    private func normalizedLines(_ text: String) -> [String] {
        text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
            .split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    }

    /// RFC 2047 encoded-word for a header with non-ASCII text.
    static func encodedHeader(_ text: String) -> String {
        let oneLine = text.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ")
        guard !oneLine.utf8.allSatisfy({ $0 < 128 }) else { return oneLine }
        return "=?UTF-8?B?\(Data(oneLine.utf8).base64EncodedString())?="
    }
}
