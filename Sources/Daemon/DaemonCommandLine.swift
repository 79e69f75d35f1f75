import Foundation
import Logging
import ServiceLifecycle
import SpecolaProtocol

/// The shared shape of `specola-agent` and `specola-coordinator`: `--config
/// FILE`, `--version`, `--help`, a YAML config that exits 2 when invalid, and
/// one service run until SIGTERM or SIGINT.
public struct DaemonCommandLine {
    public let program: String
    public let usage: String
    public var configPath: String

    public init(program: String, defaultConfig: String, usage: String) {
        self.program = program
        self.configPath = defaultConfig
        self.usage = usage
    }

    /// What the arguments asked for.
    public enum Parsed {
        case run
        case exit(Int32)
    }

    /// Reads `--config`, `--version` and `--help` from `arguments`.
    public mutating func parse(_ arguments: ArraySlice<String>) -> Parsed {
        var args = arguments
        while let arg = args.popFirst() {
            switch arg {
            case "--config", "-c":
                guard let value = args.popFirst() else { return .exit(fail("--config needs a file")) }
                configPath = value
            case "--version":
                print(SpecolaVersion.current)
                return .exit(0)
            case "--help", "-h":
                FileHandle.standardError.write(Data(usage.utf8))
                return .exit(0)
            default:
                return .exit(fail("unknown argument '\(arg)'"))
            }
        }
        return .run
    }

    public func fail(_ problem: String) -> Int32 {
        FileHandle.standardError.write(Data("\(program): \(problem)\n\(usage)".utf8))
        return 2
    }

    /// Loads the config; nil (after printing the error with file, line and field) when it is invalid.
    public func loadConfig<T: Decodable>(_ type: T.Type) -> T? {
        do {
            return try ConfigFile.load(type, path: configPath)
        } catch {
            FileHandle.standardError.write(Data("\(program): invalid config: \(error)\n".utf8))
            return nil
        }
    }

    /// Runs `service` until SIGTERM or SIGINT; 0 on a clean stop, 1 on failure.
    public func run(_ service: some Service, logger: Logger) async -> Int32 {
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: service)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
            logger.info("exiting cleanly", metadata: ["program": "\(program)"])
            return 0
        } catch {
            logger.critical("\(program) failed", metadata: ["error": "\(error)"])
            return 1
        }
    }
}
