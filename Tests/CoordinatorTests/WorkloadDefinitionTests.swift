import CooperativePoolWatch
import Testing
@testable import SpecolaClusterCore
@testable import SpecolaCoordinator

/// What `specola pod create` accepts as kube YAML.
@Suite(.watchesCooperativePool) struct WorkloadDefinitionTests {
    @Test func kubeYAMLWithAnchorsIsRefusedBeforeItIsExpanded() throws {
        var yaml = "kind: Pod\nmetadata: {name: p}\nx0: &l0 \"lol\"\n"
        for level in 1...10 {
            yaml += "x\(level): &l\(level) [" + Array(repeating: "*l\(level - 1)", count: 10).joined(separator: ", ") + "]\n"
        }
        yaml += "spec: {containers: [{name: c, image: i}]}\n"
        do {
            _ = try WorkloadDefinition.inspect(kind: .pod, yaml)
            Issue.record("kube YAML with aliases was accepted")
        } catch {
            #expect("\(error)".contains("line 3: YAML anchors and aliases"), "\(error)")
        }
    }

    @Test func plainKubeYAMLIsAccepted() throws {
        let pod = try WorkloadDefinition.inspect(kind: .pod, """
            kind: Pod
            metadata: {name: p}
            spec: {containers: [{name: c, image: i, resources: {requests: {cpu: 500m}}}]}
            """)
        #expect(pod.name == "p")
    }
}
