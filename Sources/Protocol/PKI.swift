import Crypto
import Foundation
import SwiftASN1
import X509

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The kind of principal a Specola certificate speaks for.
public enum CertificateRole: String, Sendable, CaseIterable {
    case node, coordinator, user
}

/// Who a certificate speaks for, written `role/name` (for example `node/a`).
public struct Identity: Sendable, Hashable, CustomStringConvertible {
    public var role: CertificateRole
    public var name: String

    public init(role: CertificateRole, name: String) {
        self.role = role
        self.name = name
    }

    public var description: String { "\(role.rawValue)/\(name)" }
}

/// A PKI failure; `description` says what went wrong and what to do next.
public struct PKIError: Error, CustomStringConvertible, Equatable {
    /// What kind of failure this is.
    public enum Code: String, Sendable {
        case invalidName
        case invalidSAN
        case invalidValidity
        case caExists
        case caMissing
        case caInvalid
        case io
        case crypto
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// Creates the cluster CA and issues role certificates signed by it.
///
/// Files in a PKI directory: `ca.pem`, `ca-key.pem`, and per identity
/// `<role>-<name>.pem` and `<role>-<name>-key.pem`. Keys are ECDSA P-256,
/// PKCS#8 PEM, mode 0600.
public enum PKI {
    public static let caCertFile = "ca.pem"
    public static let caKeyFile = "ca-key.pem"
    public static let organization = "specola"
    public static let uriScheme = "specola"
    public static let defaultCAName = "specola-ca"
    public static let defaultCADays = 3650
    public static let defaultLeafDays = 365

    static let backdate: TimeInterval = 5 * 60
    static let maxDays = 36_500

    // MARK: Paths

    /// Path of the certificate for `role/name` in `directory`.
    public static func certPath(directory: String, role: CertificateRole, name: String) -> String {
        join(directory, "\(role.rawValue)-\(name).pem")
    }

    /// Path of the private key for `role/name` in `directory`.
    public static func keyPath(directory: String, role: CertificateRole, name: String) -> String {
        join(directory, "\(role.rawValue)-\(name)-key.pem")
    }

    // MARK: Validation

    /// Checks `name` against `[a-z0-9][a-z0-9.-]{0,62}`.
    public static func validate(name: String) throws(PKIError) {
        let bytes = Array(name.utf8)
        func ok(_ b: UInt8, first: Bool) -> Bool {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
            case UInt8(ascii: "."), UInt8(ascii: "-"): !first
            default: false
            }
        }
        guard !bytes.isEmpty, bytes.count <= 63, ok(bytes[0], first: true),
            bytes.dropFirst().allSatisfy({ ok($0, first: false) })
        else {
            throw PKIError(
                .invalidName,
                "invalid name '\(name)': use 1-63 characters of a-z, 0-9, '.' and '-', "
                    + "starting with a letter or digit (e.g. 'node-01')")
        }
    }

    static func validate(days: Int) throws(PKIError) {
        guard days >= 1, days <= maxDays else {
            throw PKIError(.invalidValidity, "invalid validity \(days) days: use a value from 1 to \(maxDays)")
        }
    }

    // MARK: CA

    /// Creates a self-signed CA (`ca.pem`, `ca-key.pem`) in `directory`, creating it if needed.
    /// Refuses to touch an existing CA.
    @discardableResult
    public static func initCA(
        directory: String, commonName: String = defaultCAName, validityDays: Int = defaultCADays
    ) throws(PKIError) -> (certPath: String, keyPath: String) {
        try validate(days: validityDays)
        let cn = commonName.trimmingCharacters(in: .whitespaces)
        guard !cn.isEmpty, cn.count <= 64 else {
            throw PKIError(.invalidName, "invalid CA name '\(commonName)': use 1-64 characters")
        }
        let certPath = join(directory, caCertFile)
        let keyPath = join(directory, caKeyFile)
        let fm = FileManager.default
        if fm.fileExists(atPath: certPath) || fm.fileExists(atPath: keyPath) {
            throw caExists(directory)
        }
        do {
            try fm.createDirectory(
                atPath: directory, withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700])
        } catch {
            throw PKIError(.io, "cannot create directory \(directory): \(error); check the path and permissions")
        }

        let key = P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(key.publicKey)
        let now = Date()
        let cert: Certificate
        do {
            let name = try DistinguishedName {
                OrganizationName(organization)
                CommonName(cn)
            }
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(digitalSignature: true, keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: publicKey)
            }
            cert = try Certificate(
                version: .v3, serialNumber: randomSerial(), publicKey: publicKey,
                notValidBefore: now - backdate,
                notValidAfter: now + TimeInterval(validityDays) * 86_400,
                issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: extensions, issuerPrivateKey: Certificate.PrivateKey(key))
        } catch {
            throw PKIError(.crypto, "cannot build CA certificate: \(error)")
        }

        // The key is linked in exclusively, so a concurrent init cannot clobber it.
        try writeFile(keyPath, key.pemRepresentation, mode: 0o600, exclusive: true) { caExists(directory) }
        try writeFile(certPath, pem(cert), mode: 0o644, exclusive: true) { caExists(directory) }
        return (certPath, keyPath)
    }

    // MARK: Leaves

    /// Issues a certificate for `role/name`, signed by the CA in `directory`, and writes it
    /// (and its key) next to the CA. An existing certificate for the same identity is replaced.
    @discardableResult
    public static func issue(
        directory: String, role: CertificateRole, name: String, sans: [String] = [],
        validityDays: Int = defaultLeafDays
    ) throws(PKIError) -> (certPath: String, keyPath: String) {
        try validate(name: name)
        try validate(days: validityDays)
        let names = try subjectAlternativeNames(role: role, name: name, sans: sans)
        let (caCert, caKey) = try loadCA(directory: directory)

        let now = Date()
        let notAfter = now + TimeInterval(validityDays) * 86_400
        guard notAfter <= caCert.notValidAfter else {
            let left = Int(caCert.notValidAfter.timeIntervalSince(now) / 86_400)
            throw PKIError(
                .invalidValidity,
                "a \(validityDays)-day certificate would outlive the CA (expires \(caCert.notValidAfter)); "
                    + "use --days \(max(left, 0)) or less")
        }

        let key = P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(key.publicKey)
        let cert: Certificate
        do {
            let subject = try DistinguishedName {
                OrganizationName(organization)
                OrganizationalUnitName(role.rawValue)
                CommonName("\(role.rawValue)/\(name)")
            }
            let caSKI = try caCert.extensions.subjectKeyIdentifier
                ?? SubjectKeyIdentifier(hash: caCert.publicKey)
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                // Only coordinators serve; a node or user certificate cannot pose as a server.
                try ExtendedKeyUsage(role == .coordinator ? [.serverAuth, .clientAuth] : [.clientAuth])
                SubjectAlternativeNames(names)
                SubjectKeyIdentifier(hash: publicKey)
                AuthorityKeyIdentifier(keyIdentifier: caSKI.keyIdentifier)
            }
            cert = try Certificate(
                version: .v3, serialNumber: randomSerial(), publicKey: publicKey,
                notValidBefore: now - backdate, notValidAfter: notAfter,
                issuer: caCert.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: extensions, issuerPrivateKey: Certificate.PrivateKey(caKey))
        } catch {
            throw PKIError(.crypto, "cannot build certificate for \(role.rawValue)/\(name): \(error)")
        }

        let certPath = certPath(directory: directory, role: role, name: name)
        let keyPath = keyPath(directory: directory, role: role, name: name)
        try writeFile(keyPath, key.pemRepresentation, mode: 0o600, exclusive: false) { nil }
        try writeFile(certPath, pem(cert), mode: 0o644, exclusive: false) { nil }
        return (certPath, keyPath)
    }

    // MARK: Identity

    /// The identity a (validated) certificate speaks for, from its subject `OU=<role>` and
    /// `CN=<role>/<name>`; nil if the subject is not a well-formed Specola identity.
    public static func identity(of certificate: X509.Certificate) -> Identity? {
        var ou: [String] = []
        var cn: [String] = []
        for rdn in certificate.subject {
            for attribute in rdn {
                guard let value = String(attribute.value) else { continue }
                switch attribute.type {
                case .RDNAttributeType.organizationalUnitName: ou.append(value)
                case .RDNAttributeType.commonName: cn.append(value)
                default: break
                }
            }
        }
        guard ou.count == 1, cn.count == 1, let role = CertificateRole(rawValue: ou[0]) else { return nil }
        let prefix = "\(role.rawValue)/"
        guard cn[0].hasPrefix(prefix) else { return nil }
        let name = String(cn[0].dropFirst(prefix.count))
        guard (try? validate(name: name)) != nil else { return nil }
        return Identity(role: role, name: name)
    }

    /// `identity(of:)` for a PEM certificate; nil if it does not parse.
    public static func identity(ofPEM pem: String) -> Identity? {
        guard let cert = try? Certificate(pemEncoded: pem) else { return nil }
        return identity(of: cert)
    }

    // MARK: Internals

    static func subjectAlternativeNames(role: CertificateRole, name: String, sans: [String]) throws(PKIError)
        -> [GeneralName]
    {
        var result: [GeneralName] = []
        var seen = Set<String>()
        for raw in sans {
            let san = raw.trimmingCharacters(in: .whitespaces)
            let general: GeneralName
            if san.contains("*") {
                throw PKIError(
                    .invalidSAN,
                    "invalid --san '\(raw)': wildcard names are not issued; give each host's DNS name or address")
            }
            if let ip = ipAddressBytes(san) {
                general = .ipAddress(ASN1OctetString(contentBytes: ip[...]))
            } else if isDNSName(san) {
                general = .dnsName(san.lowercased())
            } else {
                throw PKIError(
                    .invalidSAN,
                    "invalid --san '\(raw)': give an IPv4/IPv6 address or a DNS name (e.g. 10.0.0.5, node-01.example.org)")
            }
            if seen.insert("\(general)").inserted { result.append(general) }
        }
        result.append(.uniformResourceIdentifier("\(uriScheme)://\(role.rawValue)/\(name)"))
        return result
    }

    /// Raw address bytes if `s` is an IPv4 or IPv6 literal (brackets allowed for IPv6).
    public static func ipAddressBytes(_ s: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, s, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var text = s
        if text.hasPrefix("["), text.hasSuffix("]") { text = String(text.dropFirst().dropLast()) }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }

    /// Letters, digits, '-' and '.' labels.
    static func isDNSName(_ s: String) -> Bool {
        var body = Substring(s)
        if body.hasSuffix(".") { body = body.dropLast() }
        guard !body.isEmpty, body.utf8.count <= 253 else { return false }
        return body.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            !label.isEmpty && label.utf8.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                && label.unicodeScalars.allSatisfy { $0.isASCII && ($0 == "-" || $0.properties.isAlphabetic || ("0"..."9").contains($0)) }
        }
    }

    static func loadCA(directory: String) throws(PKIError) -> (Certificate, P256.Signing.PrivateKey) {
        let certPath = join(directory, caCertFile)
        let keyPath = join(directory, caKeyFile)
        let fm = FileManager.default
        guard fm.fileExists(atPath: certPath), fm.fileExists(atPath: keyPath) else {
            throw PKIError(
                .caMissing,
                "no CA in \(directory) (need \(caCertFile) and \(caKeyFile)); "
                    + "run `specola pki init --dir \(directory)` first or pass the right --dir")
        }
        let cert: Certificate
        let key: P256.Signing.PrivateKey
        do {
            cert = try Certificate(pemEncoded: String(contentsOfFile: certPath, encoding: .utf8))
        } catch {
            throw PKIError(.caInvalid, "cannot read CA certificate \(certPath): \(error); restore it or create a new CA")
        }
        do {
            key = try P256.Signing.PrivateKey(pemRepresentation: String(contentsOfFile: keyPath, encoding: .utf8))
        } catch {
            throw PKIError(.caInvalid, "cannot read CA key \(keyPath) as an ECDSA P-256 key: \(error); restore it or create a new CA")
        }
        guard cert.publicKey == Certificate.PublicKey(key.publicKey) else {
            throw PKIError(.caInvalid, "\(caKeyFile) does not match \(caCertFile) in \(directory); restore the matching pair")
        }
        return (cert, key)
    }

    static func randomSerial() -> Certificate.SerialNumber {
        var rng = SystemRandomNumberGenerator()
        var bytes = (0..<20).map { _ in UInt8.random(in: 0...255, using: &rng) }
        bytes[0] = (bytes[0] & 0x7F) | 0x01  // positive, exactly 20 octets
        return Certificate.SerialNumber(bytes: bytes)
    }

    static func pem(_ cert: Certificate) throws(PKIError) -> String {
        do {
            return try cert.serializeAsPEM().pemString + "\n"
        } catch {
            throw PKIError(.crypto, "cannot encode certificate: \(error)")
        }
    }

    static func caExists(_ directory: String) -> PKIError {
        PKIError(.caExists, "CA already exists in \(directory); use a new --dir or remove it")
    }

    static func join(_ directory: String, _ file: String) -> String {
        directory.hasSuffix("/") ? directory + file : directory + "/" + file
    }

    /// Writes `contents` via a temp file created with `mode`, so the data is never readable
    /// with looser permissions. `exclusive` refuses an existing target (calls `onExists`).
    static func writeFile(
        _ path: String, _ contents: String, mode: mode_t, exclusive: Bool,
        onExists: () -> PKIError?
    ) throws(PKIError) {
        let tmp = "\(path).tmp-\(UUID().uuidString)"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw ioError("create", tmp) }
        let bytes = Array(contents.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                let err = ioError("write", tmp)
                close(fd)
                unlink(tmp)
                throw err
            }
            offset += n
        }
        _ = fchmod(fd, mode)  // umask may have narrowed it; never widens beyond `mode`
        guard fsync(fd) == 0, close(fd) == 0 else {
            let err = ioError("write", tmp)
            unlink(tmp)
            throw err
        }
        if exclusive {
            let rc = link(tmp, path)
            let linkErrno = errno
            unlink(tmp)
            if rc != 0 {
                if linkErrno == EEXIST, let e = onExists() { throw e }
                errno = linkErrno
                throw ioError("create", path)
            }
        } else if rename(tmp, path) != 0 {
            let err = ioError("replace", path)
            unlink(tmp)
            throw err
        }
    }

    static func ioError(_ op: String, _ path: String) -> PKIError {
        let reason = String(cString: strerror(errno))
        return PKIError(.io, "cannot \(op) \(path): \(reason); check the directory exists and is writable")
    }
}
