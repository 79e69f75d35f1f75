import Foundation
import Logging
import ServiceLifecycle
import SpecolaProtocol

/// Entry point of `specola-agent`: `specola-agent --config FILE`.
public enum AgentCommand {
    public static func main(arguments: [String]) async -> Int32 {
        var configPath = "/etc/specola/agent.yaml"
        var args = arguments.dropFirst()
        while let arg = args.popFirst() {
            switch arg {
            case "--config", "-c":
                guard let value = args.popFirst() else { return usage("--config needs a file") }
                configPath = value
            case "--version":
                print(SpecolaVersion.current)
                return 0
            case "--help", "-h":
                return usage(nil)
            default:
                return usage("unknown argument '\(arg)'")
            }
        }
        let config: AgentConfig
        do {
            config = try ConfigFile.load(AgentConfig.self, path: configPath)
        } catch {
            FileHandle.standardError.write(Data("specola-agent: invalid config: \(error)\n".utf8))
            return 2
        }
        LogSetup.bootstrap(level: LogSetup.level(config.logLevel))
        // A peer that drops a connection must not kill the agent (libvirt, podman sockets).
        signal(SIGPIPE, SIG_IGN)
        var logger = Logger(label: "specola.agent")
        logger[metadataKey: "node.name"] = "\(config.nodeName)"
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: Agent(config: config, logger: logger))],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        do {
            try await group.run()
            return 0
        } catch {
            logger.critical("agent failed", metadata: ["error": "\(error)"])
            return 1
        }
    }

    static func usage(_ problem: String?) -> Int32 {
        if let problem { FileHandle.standardError.write(Data("specola-agent: \(problem)\n".utf8)) }
        FileHandle.standardError.write(Data("usage: specola-agent [--config FILE]   (default /etc/specola/agent.yaml)\n".utf8))
        return problem == nil ? 0 : 2
    }
}
