import SpecolaCLI

await SpecolaCommand.runFromCommandLine()
