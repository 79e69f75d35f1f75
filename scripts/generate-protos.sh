#!/usr/bin/env bash
# Regenerates Sources/Protocol/Generated from Sources/Protocol/specola.proto.
# Needs protoc (Debian: protobuf-compiler). Builds the two Swift plugins from
# the package's own dependencies (a few minutes the first time).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "protoc missing: apt-get install -y protobuf-compiler" >&2; exit 1; }
swift build --product protoc-gen-swift
swift build --product protoc-gen-grpc-swift-2
bin="$(swift build --show-bin-path)"
out=Sources/Protocol/Generated
mkdir -p "$out"
protoc \
  --plugin=protoc-gen-swift="$bin/protoc-gen-swift" \
  --plugin=protoc-gen-grpc-swift-2="$bin/protoc-gen-grpc-swift-2" \
  --swift_opt=Visibility=Public \
  --grpc-swift-2_opt=Visibility=Public \
  --swift_out="$out" --grpc-swift-2_out="$out" \
  -I Sources/Protocol Sources/Protocol/specola.proto
echo "generated into $out"
