import Crypto
import Foundation
import SpecolaProtocol
import Testing
import X509
import CooperativePoolWatch

/// A fresh temporary directory, removed after `body`.
private func withTempDir<T>(_ body: (String) throws -> T) throws -> T {
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("specola-pki-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    return try body(dir)
}

/// Runs openssl with `arguments`; returns exit status and combined stdout/stderr.
private func openssl(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["openssl"] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

private func mode(_ path: String) throws -> Int {
    let attributes = try FileManager.default.attributesOfItem(atPath: path)
    return (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
}

@Suite(.runsOffThePool, .watchesCooperativePool) struct PKITests {
    @Test(arguments: CertificateRole.allCases)
    func issuedLeafVerifiesWithOpenSSL(role: CertificateRole) throws {
        try withTempDir { dir in
            try PKI.initCA(directory: dir)
            let name = "host-1.rack2"
            let paths = try PKI.issue(
                directory: dir, role: role, name: name,
                sans: ["127.0.2.3", "::1", "Host-1.Example.org"])
            #expect(paths.certPath == "\(dir)/\(role.rawValue)-\(name).pem")
            #expect(paths.keyPath == "\(dir)/\(role.rawValue)-\(name)-key.pem")

            let ca = "\(dir)/ca.pem"
            let verify = try openssl(["verify", "-CAfile", ca, paths.certPath])
            #expect(verify.status == 0)
            #expect(verify.output.contains("\(paths.certPath): OK"), "\(verify.output)")
            let client = try openssl(["verify", "-purpose", "sslclient", "-CAfile", ca, paths.certPath])
            #expect(client.status == 0, "sslclient: \(client.output)")
            // Only coordinators serve.
            let server = try openssl(["verify", "-purpose", "sslserver", "-CAfile", ca, paths.certPath])
            #expect((server.status == 0) == (role == .coordinator), "sslserver: \(server.output)")

            let text = try openssl(["x509", "-noout", "-text", "-in", paths.certPath])
            #expect(text.status == 0)
            #expect(text.output.contains("Subject: O = specola, OU = \(role.rawValue), CN = \(role.rawValue)/\(name)"), "\(text.output)")
            #expect(text.output.contains("Issuer: O = specola, CN = specola-ca"))
            #expect(text.output.contains("IP Address:127.0.2.3"))
            #expect(text.output.contains("IP Address:0:0:0:0:0:0:0:1"))
            #expect(text.output.contains("DNS:host-1.example.org"))
            #expect(text.output.contains("URI:specola://\(role.rawValue)/\(name)"))
            #expect(text.output.contains("CA:FALSE"))
            if role == .coordinator {
                #expect(text.output.contains("TLS Web Server Authentication, TLS Web Client Authentication"))
            } else {
                #expect(text.output.contains("TLS Web Client Authentication"))
                #expect(!text.output.contains("TLS Web Server Authentication"))
            }
            #expect(text.output.contains("ecdsa-with-SHA256"))
            #expect(text.output.contains("NIST CURVE: P-256"))

            // The key matches the certificate.
            let certKey = try openssl(["x509", "-noout", "-pubkey", "-in", paths.certPath])
            let privKey = try openssl(["pkey", "-pubout", "-in", paths.keyPath])
            #expect(certKey.status == 0 && privKey.status == 0)
            #expect(certKey.output == privKey.output)

            let pem = try String(contentsOfFile: paths.certPath, encoding: .utf8)
            #expect(PKI.identity(ofPEM: pem) == Identity(role: role, name: name))
            #expect(PKI.identity(of: try Certificate(pemEncoded: pem))?.description == "\(role.rawValue)/\(name)")
        }
    }

    @Test func caIsCriticalCAWithCertSign() throws {
        try withTempDir { dir in
            let paths = try PKI.initCA(directory: dir, commonName: "test-ca", validityDays: 30)
            let text = try openssl(["x509", "-noout", "-text", "-in", paths.certPath])
            #expect(text.output.contains("Subject: O = specola, CN = test-ca"))
            #expect(text.output.contains("X509v3 Basic Constraints: critical"))
            #expect(text.output.contains("CA:TRUE"))
            #expect(text.output.contains("Certificate Sign, CRL Sign"))
            // The CA itself is not a role identity.
            let pem = try String(contentsOfFile: paths.certPath, encoding: .utf8)
            #expect(PKI.identity(ofPEM: pem) == nil)
        }
    }

    @Test func leafFromAnotherCAFailsVerification() throws {
        try withTempDir { dirA in
            try withTempDir { dirB in
                try PKI.initCA(directory: dirA)
                try PKI.initCA(directory: dirB)
                let foreign = try PKI.issue(directory: dirB, role: .node, name: "a")
                let result = try openssl(["verify", "-CAfile", "\(dirA)/ca.pem", foreign.certPath])
                #expect(result.status != 0)
                #expect(!result.output.contains(": OK"))
            }
        }
    }

    @Test(arguments: ["", "A", "Node", "-a", ".a", "a_b", "a/b", "a b", "é", String(repeating: "a", count: 64)])
    func badNamesAreRejected(name: String) throws {
        try withTempDir { dir in
            try PKI.initCA(directory: dir)
            let error = #expect(throws: PKIError.self) {
                try PKI.issue(directory: dir, role: .node, name: name)
            }
            #expect(error?.code == .invalidName)
            // Nothing but the CA was written.
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["ca-key.pem", "ca.pem"])
        }
    }

    @Test(arguments: ["a", "0", "node-01", "n.example.org", String(repeating: "a", count: 63)])
    func goodNamesAreAccepted(name: String) throws {
        try PKI.validate(name: name)
    }

    @Test func badSANIsRejected() throws {
        try withTempDir { dir in
            try PKI.initCA(directory: dir)
            #expect(throws: PKIError.self) {
                try PKI.issue(directory: dir, role: .node, name: "a", sans: ["not a host"])
            }
        }
    }

    @Test(arguments: ["*.example.org", "*", "a.*.example.org"])
    func wildcardSANsAreNotIssued(san: String) throws {
        try withTempDir { dir in
            try PKI.initCA(directory: dir)
            let error = #expect(throws: PKIError.self) {
                try PKI.issue(directory: dir, role: .coordinator, name: "c1", sans: [san])
            }
            #expect(error?.code == .invalidSAN)
            #expect(error?.message == "invalid --san '\(san)': wildcard names are not issued; give each host's DNS name or address")
            #expect(!FileManager.default.fileExists(atPath: "\(dir)/coordinator-c1.pem"))
        }
    }

    @Test func keyFilesAreOwnerOnly() throws {
        try withTempDir { dir in
            let ca = try PKI.initCA(directory: dir)
            let leaf = try PKI.issue(directory: dir, role: .user, name: "alice")
            #expect(try mode(ca.keyPath) == 0o600)
            #expect(try mode(leaf.keyPath) == 0o600)
            #expect(try mode(leaf.certPath) == 0o644)
            // Re-issuing replaces the files and keeps the key private.
            let again = try PKI.issue(directory: dir, role: .user, name: "alice")
            #expect(try mode(again.keyPath) == 0o600)
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp-") }
            #expect(leftovers.isEmpty)
        }
    }

    @Test func reinitIsRefused() throws {
        try withTempDir { dir in
            try PKI.initCA(directory: dir)
            let before = try String(contentsOfFile: "\(dir)/ca-key.pem", encoding: .utf8)
            let error = #expect(throws: PKIError.self) { try PKI.initCA(directory: dir) }
            #expect(error?.code == .caExists)
            #expect(error?.description == "CA already exists in \(dir); use a new --dir or remove it")
            #expect(try String(contentsOfFile: "\(dir)/ca-key.pem", encoding: .utf8) == before)
        }
    }

    @Test func issueWithoutCAExplainsWhatToDo() throws {
        try withTempDir { dir in
            let error = #expect(throws: PKIError.self) {
                try PKI.issue(directory: dir, role: .node, name: "a")
            }
            #expect(error?.code == .caMissing)
            #expect(error?.description.contains("specola pki init --dir \(dir)") == true)
        }
    }

    @Test func leafMayNotOutliveCA() throws {
        try withTempDir { dir in
            try PKI.initCA(directory: dir, validityDays: 10)
            #expect(throws: PKIError.self) {
                try PKI.issue(directory: dir, role: .node, name: "a", validityDays: 365)
            }
            try PKI.issue(directory: dir, role: .node, name: "a", validityDays: 5)
        }
    }

    @Test func identityRejectsInconsistentSubjects() throws {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        func cert(_ subject: DistinguishedName) throws -> Certificate {
            try Certificate(
                version: .v3, serialNumber: .init(), publicKey: key.publicKey,
                notValidBefore: Date(), notValidAfter: Date() + 60, issuer: subject, subject: subject,
                signatureAlgorithm: .ecdsaWithSHA256, extensions: Certificate.Extensions(),
                issuerPrivateKey: key)
        }
        let good = try cert(DistinguishedName { OrganizationalUnitName("node"); CommonName("node/a") })
        #expect(PKI.identity(of: good) == Identity(role: .node, name: "a"))
        let mismatched = try cert(DistinguishedName { OrganizationalUnitName("user"); CommonName("node/a") })
        #expect(PKI.identity(of: mismatched) == nil)
        let unknownRole = try cert(DistinguishedName { OrganizationalUnitName("admin"); CommonName("admin/a") })
        #expect(PKI.identity(of: unknownRole) == nil)
        let badName = try cert(DistinguishedName { OrganizationalUnitName("node"); CommonName("node/A/b") })
        #expect(PKI.identity(of: badName) == nil)
        let noOU = try cert(DistinguishedName { CommonName("node/a") })
        #expect(PKI.identity(of: noOU) == nil)
        #expect(PKI.identity(ofPEM: "not a certificate") == nil)
    }
}
