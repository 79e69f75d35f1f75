#!/usr/bin/env bash
# Regenerates the committed Swift for the project's .proto files:
#   Sources/Wire/{agent,state,peer,api}.proto -> Sources/Wire/Generated   (the messages: SwiftProtobuf, no gRPC)
#   Sources/Protocol/specola_services.proto -> Sources/Protocol/Generated (gRPC clients and servers, importing SpecolaWire)
#   Sources/Bench/etcd_kv.proto    -> Sources/Bench/Generated   (etcd subset, client only)
# Needs protoc (Debian: protobuf-compiler). Builds the two Swift plugins from
# the package's own dependencies (a few minutes the first time); set
# PLUGIN_DIR to a folder that already holds both plugins to skip that.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "protoc missing: apt-get install -y protobuf-compiler" >&2; exit 1; }
if [ -n "${PLUGIN_DIR:-}" ]; then
  bin="$PLUGIN_DIR"
else
  swift build --product protoc-gen-swift
  swift build --product protoc-gen-grpc-swift-2
  bin="$(swift build --show-bin-path)"
fi
plugins=(--plugin=protoc-gen-swift="$bin/protoc-gen-swift" --plugin=protoc-gen-grpc-swift-2="$bin/protoc-gen-grpc-swift-2")

mapping="$(mktemp)"
trap 'rm -f "$mapping"' EXIT
wire=(agent state peer api)
for file in "${wire[@]}"; do
  printf 'mapping { module_name: "SpecolaWire" proto_file_path: "%s.proto" }\n' "$file"
done >"$mapping"
mkdir -p Sources/Wire/Generated
protoc "${plugins[@]}" --swift_opt=Visibility=Public --swift_out=Sources/Wire/Generated \
  -I Sources/Wire $(printf "Sources/Wire/%s.proto " "${wire[@]}")
protoc "${plugins[@]}" \
  --grpc-swift-2_opt=Visibility=Public,ProtoPathModuleMappings="$mapping" --grpc-swift-2_out=Sources/Protocol/Generated \
  -I Sources/Wire -I Sources/Protocol Sources/Protocol/specola_services.proto
echo "generated into Sources/Wire/Generated and Sources/Protocol/Generated"

out=Sources/Bench/Generated
mkdir -p "$out"
protoc "${plugins[@]}" \
  --grpc-swift-2_opt=Server=false \
  --swift_out="$out" --grpc-swift-2_out="$out" \
  -I Sources/Bench Sources/Bench/etcd_kv.proto
echo "generated into $out"
