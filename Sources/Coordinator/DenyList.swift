import GRPCCore
import GRPCNIOTransportHTTP2
import SpecolaClusterCore
import SpecolaProtocol
import Synchronization
import X509

/// This replica's copy of the replicated deny list (`specola pki revoke`), readable from any
/// thread so every call can be checked, and awaitable so open calls of a revoked identity end.
/// The replica replaces its entries whenever the applied state's list changes.
final class DenyList: Sendable {
    private struct Watch {
        var serial: String
        var identity: String
        var continuation: CheckedContinuation<Specola_V1_RevokedCertificate?, Never>
    }

    private struct State {
        var entries: [Specola_V1_RevokedCertificate] = []
        var watches: [UInt64: Watch] = [:]
        var cancelledBeforeWatching: Set<UInt64> = []
        var nextWatch: UInt64 = 0
    }

    private let state = Mutex(State())

    /// Serials compare as lower-case hex without separators or leading zeros (openssl and we print them differently).
    static func normalized(serial: String) -> String {
        let hex = serial.lowercased().filter { $0 != ":" }
        let trimmed = hex.drop { $0 == "0" }
        return trimmed.isEmpty ? "0" : String(trimmed)
    }

    /// `normalized(serial:)` of the certificate's serial, built in one buffer (every call asks it).
    static func serial(of certificate: Certificate) -> String { serial(bytes: certificate.serialNumber.bytes) }

    static func serial(bytes: some Collection<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        hex.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            if !hex.isEmpty || byte >> 4 != 0 { hex.append(digits[Int(byte >> 4)]) }
            if !hex.isEmpty || byte & 0xF != 0 { hex.append(digits[Int(byte & 0xF)]) }
        }
        return hex.isEmpty ? "0" : String(decoding: hex, as: UTF8.self)
    }

    private static func match(_ entries: [Specola_V1_RevokedCertificate], serial: String, identity: String)
        -> Specola_V1_RevokedCertificate?
    {
        entries.first { entry in
            entry.serial.isEmpty ? entry.identity == identity : normalized(serial: entry.serial) == serial
        }
    }

    var count: Int { state.withLock { $0.entries.count } }

    /// The entry that revokes this certificate, if any.
    func entry(serial: String, identity: String) -> Specola_V1_RevokedCertificate? {
        state.withLock { Self.match($0.entries, serial: serial, identity: identity) }
    }

    /// Installs the applied state's list and wakes the calls it now revokes.
    func replace(with entries: [Specola_V1_RevokedCertificate]) {
        let woken: [(CheckedContinuation<Specola_V1_RevokedCertificate?, Never>, Specola_V1_RevokedCertificate)] = state.withLock { state in
            state.entries = entries
            var woken: [(CheckedContinuation<Specola_V1_RevokedCertificate?, Never>, Specola_V1_RevokedCertificate)] = []
            for (id, watch) in state.watches {
                if let entry = Self.match(entries, serial: watch.serial, identity: watch.identity) {
                    state.watches.removeValue(forKey: id)
                    woken.append((watch.continuation, entry))
                }
            }
            return woken
        }
        for (continuation, entry) in woken { continuation.resume(returning: entry) }
    }

    /// Returns the revoking entry once there is one; nil when the waiting task is cancelled.
    func waitUntilRevoked(serial: String, identity: String) async -> Specola_V1_RevokedCertificate? {
        let id = state.withLock { state -> UInt64 in
            state.nextWatch += 1
            return state.nextWatch
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now: Specola_V1_RevokedCertificate?? = state.withLock { state in
                    if state.cancelledBeforeWatching.remove(id) != nil { return .some(nil) }
                    if let entry = Self.match(state.entries, serial: serial, identity: identity) { return .some(entry) }
                    state.watches[id] = Watch(serial: serial, identity: identity, continuation: continuation)
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            let continuation = state.withLock { state in
                if let watch = state.watches.removeValue(forKey: id) { return Optional(watch.continuation) }
                state.cancelledBeforeWatching.insert(id)
                return nil
            }
            continuation?.resume(returning: nil)
        }
    }

    static func refusal(_ entry: Specola_V1_RevokedCertificate, identity: String, serial: String) -> RPCError {
        let what = entry.serial.isEmpty ? "every certificate of \(identity)" : "certificate \(serial) (\(identity))"
        let reason = entry.reason.isEmpty ? "" : ": \(entry.reason)"
        return RPCError(
            code: .permissionDenied,
            message: "\(what) was revoked by \(entry.revokedBy)\(reason); ask an operator for a new certificate")
    }
}

/// Checks every call against the deny list, and ends a call (a stream included) the moment
/// its certificate is revoked. Calls without a Specola client certificate pass through to
/// `CallerIdentity`, which refuses them.
struct RevocationInterceptor: ServerInterceptor {
    let denyList: DenyList

    /// The calls that stay open (every other method in specola_services.proto is unary).
    static let streamingMethods: Set<MethodDescriptor> = [
        Specola_V1_AgentLink.Method.Connect.descriptor, Specola_V1_RaftPeer.Method.Pipe.descriptor,
    ]

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        guard let presented = ConnectionCertificates.of(context), let identity = presented.identity else {
            return try await next(request, context)
        }
        let serial = presented.serial
        let name = identity.description
        if let entry = denyList.entry(serial: serial, identity: name) {
            throw DenyList.refusal(entry, identity: name, serial: serial)
        }
        // A unary call's handler has run when `next` returns; checking again then withholds the
        // answer of a call (a long poll) during which the certificate was revoked, without the two
        // watching tasks per call that streams need.
        guard Self.streamingMethods.contains(context.descriptor) else {
            let response = try await next(request, context)
            if let entry = denyList.entry(serial: serial, identity: name) {
                throw DenyList.refusal(entry, identity: name, serial: serial)
            }
            return response
        }
        // A client-streaming handler consumes its requests inside `next`; a server or bidirectional
        // stream does so inside the producer. Both end when the certificate is revoked.
        var response = try await withoutActuallyEscaping(next) { next in
            try await whileNotRevoked(serial: serial, identity: name) { try await next(request, context) }
        }
        if case .success(var contents) = response.accepted {
            let producer = contents.producer
            contents.producer = { [denyList] writer in
                try await RevocationInterceptor(denyList: denyList).whileNotRevoked(serial: serial, identity: name) {
                    try await producer(writer)
                }
            }
            response.accepted = .success(contents)
        }
        return response
    }

    private func whileNotRevoked<T: Sendable>(serial: String, identity: String, _ body: @escaping @Sendable () async throws -> T)
        async throws -> T
    {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask { [denyList] in
                guard let entry = await denyList.waitUntilRevoked(serial: serial, identity: identity) else { return nil }
                throw DenyList.refusal(entry, identity: identity, serial: serial)
            }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let value = result { return value }
            }
            throw CancellationError()
        }
    }
}
