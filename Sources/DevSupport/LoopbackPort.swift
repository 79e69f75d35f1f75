#if canImport(Glibc)
import Glibc
#endif

/// Free ports for processes a test or benchmark starts on loopback addresses.
public enum LoopbackPort {
    /// A port on `host` that is free now, found by binding port 0 (TCP unless `udp`).
    public static func free(on host: String = "127.0.0.1", udp: Bool = false) -> Int {
        free(1, on: host, udp: udp)[0]
    }

    /// `count` different ports on `host` that are free now. Each is held until all are found:
    /// ports probed one after another can repeat, and a process given one port twice fails to bind.
    public static func free(_ count: Int, on host: String = "127.0.0.1", udp: Bool = false) -> [Int] {
        var held: [Int32] = []
        defer { held.forEach { close($0) } }
        return (0..<count).map { _ in
            let (fd, port) = bound(on: host, udp: udp)
            held.append(fd)
            return port
        }
    }

    /// A socket bound to port 0 on `host`, and the port it got.
    private static func bound(on host: String, udp: Bool) -> (Int32, Int) {
        let fd = socket(AF_INET, Int32(udp ? SOCK_DGRAM.rawValue : SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        inet_pton(AF_INET, host, &address.sin_addr)
        _ = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }
}
