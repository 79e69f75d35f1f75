/// Formats Unix milliseconds as UTC text without a calendar object, so payloads are a pure
/// function of the notification.
public enum UTCTime {
    private static let weekdays = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]  // 1970-01-01 was a Thursday
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    private struct Parts {
        var year: Int64, month: Int, day: Int, hour: Int, minute: Int, second: Int, millisecond: Int, weekday: Int
    }

    /// Civil date from days since 1970 (H. Hinnant's algorithm), valid for the proleptic Gregorian calendar.
    private static func parts(_ unixMs: Int64) -> Parts {
        let (days, msOfDay) = floorDivide(unixMs, 86_400_000)
        let shifted = days + 719_468
        let (era, _) = floorDivide(shifted, 146_097)
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = Int(dayOfYear - (153 * monthIndex + 2) / 5 + 1)
        let month = Int(monthIndex < 10 ? monthIndex + 3 : monthIndex - 9)
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        let ms = Int(msOfDay)
        return Parts(
            year: year, month: month, day: day, hour: ms / 3_600_000, minute: ms / 60_000 % 60, second: ms / 1000 % 60,
            millisecond: ms % 1000, weekday: Int(floorDivide(days, 7).remainder))
    }

    private static func floorDivide(_ value: Int64, _ divisor: Int64) -> (quotient: Int64, remainder: Int64) {
        let quotient = value >= 0 ? value / divisor : (value - divisor + 1) / divisor
        return (quotient, value - quotient * divisor)
    }

    private static func padded(_ value: some BinaryInteger, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    /// `2026-11-20T10:04:05.123Z` (RFC 3339, as Alertmanager writes times).
    public static func rfc3339(_ unixMs: Int64) -> String {
        let p = parts(unixMs)
        return "\(padded(p.year, 4))-\(padded(p.month, 2))-\(padded(p.day, 2))T\(padded(p.hour, 2)):\(padded(p.minute, 2))"
            + ":\(padded(p.second, 2)).\(padded(p.millisecond, 3))Z"
    }

    /// `Fri, 20 Nov 2026 10:04:05 +0000` (the e-mail `Date:` header, RFC 5322).
    public static func rfc5322(_ unixMs: Int64) -> String {
        let p = parts(unixMs)
        return "\(weekdays[p.weekday]), \(padded(p.day, 2)) \(months[p.month - 1]) \(p.year) "
            + "\(padded(p.hour, 2)):\(padded(p.minute, 2)):\(padded(p.second, 2)) +0000"
    }
}
