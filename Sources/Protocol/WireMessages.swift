// The wire messages live in SpecolaWire (no gRPC); everyone who speaks the protocol sees them.
@_exported import SpecolaWire
