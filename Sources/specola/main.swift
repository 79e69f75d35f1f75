import SpecolaCLI

await SpecolaCommand.main()
