// specola-bench: one load generator for Specola's KV (mTLS) and etcd's KV (h2c, or
// the same mTLS with --pki), so both Raft groups are measured through one client stack.
// scripts/bench-raft.sh drives it; each subcommand prints one RESULT line.
import Foundation
import SpecolaProtocol
#if canImport(Glibc)
import Glibc
#endif

let usage = """
    usage: specola-bench SUBCOMMAND [--option value]...
      setup    --dir D --hosts H1,H2,H3 [--etcd-members N] [--access on|off] [--peers direct|grpc]
                                                   PKI + coordinator configs (+ certificates
                                                   pki/coordinator-etcd-mN.pem for 127.0.0.1); prints ENDPOINTS
      load     --system specola|etcd --endpoints E1,E2,E3 [--pki D] --clients N   (etcd: --pki = mTLS)
               [--seconds S] [--warmup S] [--value-bytes B] [--op put|stale-get]
               (stale-get: a read without Raft; Specola's stale get, etcd's serializable range)
      leader   --endpoints E1,E2,E3 --pki D        Specola: prints the leader's address
      failover --system specola|etcd --endpoints ... [--pki D] --leader E --pid PID
               [--writers N] [--timeout-ms T]       kill -9 the leader, print the gap
      caughtup --endpoints ... --pki D --endpoint E Specola: wait until E has caught up
      serve-bare --pki D --name cN --host H        Specola's KV API answered at once (no Raft, no
                                                   disk) as coordinator cN on H; prints LISTENING H:PORT
    """

struct Options {
    var values: [String: String] = [:]

    init(_ arguments: ArraySlice<String>) throws {
        var rest = arguments
        while let flag = rest.popFirst() {
            guard flag.hasPrefix("--"), let value = rest.popFirst() else { throw BenchError("bad argument '\(flag)'\n\(usage)") }
            values[String(flag.dropFirst(2))] = value
        }
    }

    func string(_ name: String) throws -> String {
        guard let value = values[name] else { throw BenchError("--\(name) is required\n\(usage)") }
        return value
    }

    func number(_ name: String, default fallback: Double) throws -> Double {
        guard let text = values[name] else { return fallback }
        guard let value = Double(text), value > 0 else { throw BenchError("--\(name) must be a positive number") }
        return value
    }

    func endpoints(_ name: String = "endpoints") throws -> [HostPort] {
        try string(name).split(separator: ",").map {
            guard let endpoint = HostPort(parsing: String($0)) else { throw BenchError("'\($0)' is not HOST:PORT") }
            return endpoint
        }
    }

    var system: System {
        get throws {
            let name = values["system"] ?? "specola"
            guard let system = System(rawValue: name) else { throw BenchError("--system must be specola or etcd") }
            return system
        }
    }

    /// The benchmark's user certificate, issued by `setup`.
    var tls: TLSFiles? {
        values["pki"].map { TLSFiles(ca: "\($0)/ca.pem", cert: "\($0)/user-bench.pem", key: "\($0)/user-bench-key.pem") }
    }

    func pool() throws -> KVPool {
        try KVPool(system: try system, endpoints: try endpoints(), tls: tls)
    }
}

func seconds(_ value: Double) -> Duration { .milliseconds(Int(value * 1000)) }

/// Binds port 0 on `host` to learn a port nobody listens on right now.
func freePort(host: String) throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw BenchError("socket: errno \(errno)") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { throw BenchError("'\(host)' is not an IPv4 address") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else { throw BenchError("cannot bind \(host):0: errno \(errno)") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A CA, one user certificate, a coordinator certificate + config per host, and a
/// certificate for each of `etcdMembers` etcd members on 127.0.0.1 (server and peer TLS).
/// `directPeers`: replicas exchange Raft traffic on the direct channel (`raftAddress`), else over gRPC.
func setup(dir: String, hosts: [String], etcdMembers: Int, access: Bool = true, directPeers: Bool = true) throws -> [HostPort] {
    let pki = dir + "/pki"
    try PKI.initCA(directory: pki, validityDays: 2)
    try PKI.issue(directory: pki, role: .user, name: "bench", validityDays: 1)
    for member in stride(from: 1, through: etcdMembers, by: 1) {
        try PKI.issue(directory: pki, role: .coordinator, name: "etcd-m\(member)", sans: ["127.0.0.1"], validityDays: 1)
    }
    let listen = try hosts.map { HostPort(host: $0, port: try freePort(host: $0)) }
    let direct = try hosts.map { HostPort(host: $0, port: try freePort(host: $0)) }
    let peers = listen.enumerated().map {
        "  - {id: \($0.offset + 1), name: c\($0.offset + 1), address: \($0.element)"
            + (directPeers ? ", raftAddress: \(direct[$0.offset])}" : "}")
    }
    for (offset, address) in listen.enumerated() {
        let name = "c\(offset + 1)"
        try PKI.issue(directory: pki, role: .coordinator, name: name, sans: [address.host], validityDays: 1)
        let config = """
            name: \(name)
            id: \(offset + 1)
            listen: \(address)
            metricsListen: \(address.host):\(try freePort(host: address.host))
            dataDir: \(dir)/data/\(name)
            logLevel: warning
            access: {bootstrapAdmins: [bench], enforce: \(access)}
            tls: {ca: \(pki)/ca.pem, cert: \(pki)/coordinator-\(name).pem, key: \(pki)/coordinator-\(name)-key.pem}
            peers:
            \(peers.joined(separator: "\n"))

            """
        try config.write(toFile: "\(dir)/\(name).yaml", atomically: true, encoding: .utf8)
    }
    return listen
}

func main() async throws {
    let arguments = CommandLine.arguments.dropFirst()
    guard let command = arguments.first else { throw BenchError(usage) }
    let options = try Options(arguments.dropFirst())
    switch command {
    case "setup":
        let endpoints = try setup(dir: try options.string("dir"), hosts: try options.string("hosts").split(separator: ",").map(String.init),
                                  etcdMembers: Int(try options.number("etcd-members", default: 3)),
                                  access: options.values["access"] != "off", directPeers: options.values["peers"] != "grpc")
        print("ENDPOINTS " + endpoints.map(\.description).joined(separator: ","))
    case "load":
        let clients = Int(try options.number("clients", default: 1))
        let duration = seconds(try options.number("seconds", default: 10))
        let warmup = seconds(try options.number("warmup", default: 1))
        let valueBytes = Int(try options.number("value-bytes", default: 128))
        let staleReads = options.values["op"] == "stale-get"
        let pool = try options.pool()
        if let leader = options.values["leader"], let endpoint = HostPort(parsing: leader) { pool.prefer(endpoint) }
        let result = try await pool.with {
            try await Runs.load(pool: $0, clients: clients, duration: duration, warmup: warmup, valueBytes: valueBytes,
                          staleReads: staleReads)
        }
        print(result.line)
    case "leader":
        let leader = try await options.pool().with { try await Runs.leader(pool: $0, limit: .seconds(20)) }
        print(leader)
    case "failover":
        guard let leader = HostPort(parsing: try options.string("leader")), let pid = pid_t(try options.string("pid")) else {
            throw BenchError("--leader HOST:PORT and --pid PID are required")
        }
        let writers = Int(try options.number("writers", default: 4))
        let timeout = Duration.milliseconds(Int(try options.number("timeout-ms", default: 100)))
        let gap = try await options.pool().with {
            try await Runs.failover(pool: $0, leader: leader, pid: pid, writers: writers, callTimeout: timeout, limit: .seconds(30))
        }
        print(String(format: "RESULT gap_ms=%.1f", Runs.ms(gap)))
    case "caughtup":
        guard let endpoint = HostPort(parsing: try options.string("endpoint")) else { throw BenchError("--endpoint HOST:PORT") }
        try await options.pool().with { try await Runs.caughtUp(pool: $0, endpoint: endpoint, limit: .seconds(30)) }
        print("RESULT caught_up=\(endpoint)")
    case "serve-bare":
        let pki = try options.string("pki"), name = try options.string("name")
        try await serveBare(host: try options.string("host"), tls: TLSFiles(
            ca: "\(pki)/\(PKI.caCertFile)", cert: PKI.certPath(directory: pki, role: .coordinator, name: name),
            key: PKI.keyPath(directory: pki, role: .coordinator, name: name)))
    default:
        throw BenchError("unknown subcommand '\(command)'\n\(usage)")
    }
}

do {
    try await main()
} catch {
    FileHandle.standardError.write(Data("specola-bench: \(error)\n".utf8))
    exit(1)
}
