import Foundation
import SpecolaAgent

exit(await AgentCommand.main(arguments: CommandLine.arguments))
