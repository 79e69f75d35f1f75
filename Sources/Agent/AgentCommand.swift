import Foundation
import Logging
import SpecolaProtocol
import SpecolaDaemon

/// Entry point of `specola-agent`: `specola-agent --config FILE`.
public enum AgentCommand {
    public static func main(arguments: [String]) async -> Int32 {
        var commandLine = DaemonCommandLine(
            program: "specola-agent", defaultConfig: "/etc/specola/agent.yaml",
            usage: "usage: specola-agent [--config FILE]   (default /etc/specola/agent.yaml)\n")
        if case .exit(let code) = commandLine.parse(arguments.dropFirst()) { return code }
        guard let config = commandLine.loadConfig(AgentConfig.self) else { return 2 }
        LogSetup.bootstrap(level: LogSetup.level(config.logLevel))
        // A peer that drops a connection must not kill the agent (libvirt, podman sockets).
        signal(SIGPIPE, SIG_IGN)
        var logger = Logger(label: "specola.agent")
        logger[metadataKey: "node.name"] = "\(config.nodeName)"
        return await commandLine.run(Agent(config: config, logger: logger), logger: logger)
    }
}
