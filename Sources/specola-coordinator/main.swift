import Foundation
import SpecolaCoordinator

exit(await CoordinatorCommand.main(arguments: CommandLine.arguments))
