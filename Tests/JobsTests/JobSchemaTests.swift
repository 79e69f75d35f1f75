import CooperativePoolWatch
import Foundation
import SpecolaJobs
import Testing
import Yams

/// Validates `yaml` against the published schema with Python's jsonschema; returns the validator's complaints.
private func schemaComplaints(_ yaml: String) throws -> [String] {
    let document = try #require(try Yams.load(yaml: yaml))
    let json = try JSONSerialization.data(withJSONObject: document, options: [.sortedKeys])
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("specola-schema-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let instance = folder.appendingPathComponent("spec.json")
    try json.write(to: instance)
    let script = """
        import json, sys, jsonschema
        schema = json.load(open(sys.argv[1]))
        jsonschema.Draft202012Validator.check_schema(schema)
        errors = jsonschema.Draft202012Validator(schema).iter_errors(json.load(open(sys.argv[2])))
        for error in errors:
            print("/".join(str(p) for p in error.absolute_path) + ": " + error.message)
        """
    let process = Process()
    // Debian's python3, which python3-jsonschema (scripts/install-deps.sh) serves.
    process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    process.arguments = ["-c", script, TestFiles.source("specola-job.schema.json").path, instance.path]
    let output = Pipe()
    process.standardOutput = output
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    #expect(process.terminationStatus == 0, "/usr/bin/python3 cannot validate: run scripts/install-deps.sh (python3-jsonschema)")
    return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
}

@Test(.watchesCooperativePool, .runsOffThePool) func theSamplesMatchThePublishedSchema() throws {
    for sample in ["Samples/reduce-pipeline.yaml", "Samples/simulate-job.yaml"] {
        #expect(try schemaComplaints(TestFiles.text(sample)) == [], "\(sample)")
    }
}

@Test(.watchesCooperativePool, .runsOffThePool) func aBadSampleIsRejectedByBothSchemaAndParser() throws {
    let bad = """
        apiVersion: specola/v1
        kind: Pipeline
        metadata: {name: reduce, owner: ann, project: survey}
        steps:
          - name: calibrate
            driver: podman
            image: localhost/specola-mini
            resouces: {cpu: 2}
            count: 0
          - name: stack
            driver: exec
            command: /bin/true
            resources: {memory: 4 gigs}
        """
    let complaints = try schemaComplaints(bad)
    #expect(complaints.contains { $0.contains("resouces") })
    #expect(complaints.contains { $0.hasPrefix("steps/0/count") })
    #expect(complaints.contains { $0.hasPrefix("steps/1/resources/memory") })

    guard case .failure(let errors) = JobSpecParser.parse(bad, file: "bad.yaml") else {
        Issue.record("the parser accepted a spec the schema rejects")
        return
    }
    #expect(errors.errors.map(\.field) == ["steps[0].resouces", "steps[0].count", "steps[1].resources.memory"])
}
