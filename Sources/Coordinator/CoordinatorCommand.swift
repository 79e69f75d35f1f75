import SpecolaClusterCore
import Foundation
import Logging
import SpecolaProtocol
import SpecolaDaemon

/// Entry point of `specola-coordinator`: run a replica, or seed one from a snapshot.
public enum CoordinatorCommand {
    static let usage = """
        usage: specola-coordinator [--config FILE]                run a replica (default /etc/specola/coordinator.yaml)
               specola-coordinator restore FILE [--config FILE]   seed an empty replica from `specola snapshot save` output

        """

    public static func main(arguments: [String]) async -> Int32 {
        var commandLine = DaemonCommandLine(
            program: "specola-coordinator", defaultConfig: "/etc/specola/coordinator.yaml", usage: usage)
        var args = arguments.dropFirst()
        var restoreFile: String?
        if args.first == "restore" {
            args.removeFirst()
            guard let file = args.popFirst(), !file.hasPrefix("-") else { return commandLine.fail("restore needs a snapshot FILE") }
            restoreFile = file
        }
        if case .exit(let code) = commandLine.parse(args) { return code }
        guard let config = commandLine.loadConfig(CoordinatorConfig.self) else { return 2 }
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
        return await commandLine.run(Coordinator(config: config, logger: logger), logger: logger)
    }
}
