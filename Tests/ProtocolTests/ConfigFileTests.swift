import Foundation
import Testing
@testable import SpecolaProtocol
import CooperativePoolWatch
import SpecolaDaemon

struct SampleConfig: Decodable {
    var name: String
    var port: Int
    var tls: TLSFiles?
    enum CodingKeys: String, CodingKey, CaseIterable { case name, port, tls }
    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        port = try c.decode(Int.self, forKey: .port)
        tls = try c.decodeIfPresent(TLSFiles.self, forKey: .tls)
    }
}

@Suite(.runsOffThePool, .watchesCooperativePool) struct ConfigFileTests {
    func error(_ yaml: String) -> ConfigError? {
        do {
            _ = try ConfigFile.decode(SampleConfig.self, yaml: yaml, file: "sample.yaml")
            return nil
        } catch let error as ConfigError {
            return error
        } catch {
            Issue.record("unexpected \(error)")
            return nil
        }
    }

    @Test func syntaxErrorsNameLineAndColumn() throws {
        let e = try #require(error("name: a\nport: [1, 2\n"))
        #expect(e.line == 3)
        #expect(e.description.hasPrefix("sample.yaml:3:"))
    }

    @Test func wrongTypeNamesTheFieldAndItsLine() throws {
        let e = try #require(error("name: a\nport: many\n"))
        #expect(e.field == "port")
        #expect(e.line == 2)
        #expect(e.column == 1)
        #expect(e.description.contains("whole number"))
    }

    @Test func unknownFieldsAreRejectedWithTheirPlace() throws {
        let e = try #require(error("name: a\nport: 1\ntls:\n  ca: x\n  cert: y\n  key: z\n  kye: w\n"))
        #expect(e.field == "tls.kye")
        #expect(e.line == 7)
        #expect(e.column == 3)
        #expect(e.description.contains("unknown field"))
    }

    @Test func missingFieldsAreNamed() throws {
        let e = try #require(error("name: a\n"))
        #expect(e.description.contains("'port' is missing"))
    }

    @Test func validConfigLoads() throws {
        let config = try ConfigFile.decode(SampleConfig.self, yaml: "name: a\nport: 7\n", file: "x")
        #expect(config.port == 7)
    }

    @Test func addressesParse() {
        #expect(HostPort(parsing: "127.0.0.11:7450") == HostPort(host: "127.0.0.11", port: 7450))
        #expect(HostPort(parsing: "[::1]:80") == HostPort(host: "::1", port: 80))
        #expect(HostPort(parsing: "host", defaultPort: 7450) == HostPort(host: "host", port: 7450))
        #expect(HostPort(parsing: "host:99999") == nil)
        #expect(HostPort(parsing: "") == nil)
    }
}
