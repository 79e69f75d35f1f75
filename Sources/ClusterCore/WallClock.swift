import Foundation

/// Wall-clock milliseconds, read only by proposers (never inside `apply`).
public enum WallClock {
    public static func nowUnixMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}
