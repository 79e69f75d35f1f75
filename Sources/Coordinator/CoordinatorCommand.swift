import Foundation
import Logging
import ServiceLifecycle
import SpecolaProtocol

/// Entry point of `specola-coordinator`: `specola-coordinator --config FILE`.
public enum CoordinatorCommand {
    public static func main(arguments: [String]) async -> Int32 {
        var configPath = "/etc/specola/coordinator.yaml"
        var restoreFile: String?
        var args = arguments.dropFirst()
        if args.first == "restore" {
            args.removeFirst()
            guard let file = args.popFirst(), !file.hasPrefix("-") else { return usage("restore needs a snapshot FILE") }
            restoreFile = file
        }
        while let arg = args.popFirst() {
            switch arg {
            case "--config", "-c":
                guard let value = args.popFirst() else { return usage("--config needs a file") }
                configPath = value
            case "--version":
                print(SpecolaVersion.current)
                return 0
            case "--help", "-h":
                _ = usage(nil)
                return 0
            default:
                return usage("unknown argument '\(arg)'")
            }
        }
        let config: CoordinatorConfig
        do {
            config = try ConfigFile.load(CoordinatorConfig.self, path: configPath)
        } catch {
            FileHandle.standardError.write(Data("specola-coordinator: invalid config: \(error)\n".utf8))
            return 2
        }
        if let restoreFile {
            do {
                print(try Restore.run(snapshotFile: restoreFile, config: config))
                return 0
            } catch {
                FileHandle.standardError.write(Data("specola-coordinator: restore failed: \(error)\n".utf8))
                return 1
            }
        }
        LogSetup.bootstrap(level: LogSetup.level(config.logLevel))
        var logger = Logger(label: "specola.coordinator")
        logger[metadataKey: "coordinator.name"] = "\(config.name)"
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: Coordinator(config: config, logger: logger))],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        do {
            try await group.run()
            logger.info("coordinator stopped")
            return 0
        } catch {
            logger.critical("coordinator failed", metadata: ["error": "\(error)"])
            return 1
        }
    }

    static func usage(_ problem: String?) -> Int32 {
        if let problem { FileHandle.standardError.write(Data("specola-coordinator: \(problem)\n".utf8)) }
        FileHandle.standardError.write(Data("usage: specola-coordinator [--config FILE]            run a replica (default /etc/specola/coordinator.yaml)\n       specola-coordinator restore FILE [--config FILE]  seed an empty replica from `specola snapshot save` output\n".utf8))
        return problem == nil ? 0 : 2
    }
}
