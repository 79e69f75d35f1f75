import CooperativePoolWatch
import SpecolaJobs
import Testing

@Test(.watchesCooperativePool) func foreachFansOutAndTheNextStepFansIn() throws {
    let spec = try JobSpecParser.parse(TestFiles.text("Samples/reduce-pipeline.yaml"), file: "reduce-pipeline.yaml").get()
    let instances = spec.instances()
    #expect(instances.map(\.id) == ["reduce-m31/prepare"] + (0..<8).map { "reduce-m31/calibrate[\($0)]" } + ["reduce-m31/stack"])
    let calibrate = instances.filter { $0.task.name == "calibrate" }
    #expect(calibrate.map { $0.env["SPECOLA_ITEM"] } == (1...8).map { "exp0\($0)" })
    #expect(calibrate.allSatisfy { $0.waitsFor == ["reduce-m31/prepare"] })
    #expect(instances.last?.waitsFor == calibrate.map(\.id))
    // Only the root step can be queued before anything has run.
    #expect(spec.initialRequests(submitIndex: 7).map(\.id) == ["reduce-m31/prepare"])
}

@Test(.watchesCooperativePool) func arraysAndCountsExpandWithTheirIndex() throws {
    let spec = try JobSpecParser.parse("""
        apiVersion: specola/v1
        kind: Job
        metadata: {name: sweep, owner: ann, project: theory, priority: 80}
        tasks:
          - {name: sim, driver: exec, command: /bin/true, array: {range: 3-5}, count: 2}
        """, file: "s.yaml").get()
    let instances = spec.instances()
    #expect(instances.map(\.id) == ["sweep/sim#3.0", "sweep/sim#3.1", "sweep/sim#4.0", "sweep/sim#4.1", "sweep/sim#5.0", "sweep/sim#5.1"])
    #expect(instances.map { $0.env["SPECOLA_ARRAY_INDEX"]! } == ["3", "3", "4", "4", "5", "5"])
    let request = spec.initialRequests(submitIndex: 9)[0]
    #expect(request.priority == 80 && request.project == "theory" && request.job == "sweep" && request.submitIndex == 9)
}

@Test(.watchesCooperativePool) func pipelineOrderPutsDependenciesFirst() {
    let graph = PipelineGraph(steps: ["stack", "calibrate", "prepare"], depends: ["stack": ["calibrate"], "calibrate": ["prepare"]])
    #expect(graph.problems().isEmpty)
    #expect(graph.order() == ["prepare", "calibrate", "stack"])
    #expect(graph.upstream(of: "stack") == ["calibrate", "prepare"])
    #expect(PipelineGraph(steps: ["a"], depends: ["a": ["a"]]).problems() == [.cycle(["a", "a"])])
}
