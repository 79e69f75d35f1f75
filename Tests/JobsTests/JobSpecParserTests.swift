import CooperativePoolWatch
import SpecolaJobs
import Testing

/// Every problem the parser reports for `yaml`, rendered as the user would see it.
private func problems(_ yaml: String, file: String = "spec.yaml") -> [String] {
    switch JobSpecParser.parse(yaml, file: file) {
    case .success: return []
    case .failure(let errors): return errors.errors.map(\.description)
    }
}

private func parsed(_ yaml: String) throws -> JobSpec {
    try JobSpecParser.parse(yaml, file: "spec.yaml").get()
}

private let header = """
    apiVersion: specola/v1
    kind: Job
    metadata: {name: j, owner: ann, project: p}

    """

@Test(.watchesCooperativePool) func theShippedSamplesAreValid() throws {
    let pipeline = try JobSpecParser.parse(TestFiles.text("Samples/reduce-pipeline.yaml"), file: "reduce-pipeline.yaml").get()
    #expect(pipeline.kind == .pipeline)
    #expect(pipeline.metadata.priority == 60)
    #expect(pipeline.tasks.map(\.name) == ["prepare", "calibrate", "stack"])
    #expect(pipeline.tasks[1].foreach?.count == 8)
    #expect(pipeline.tasks[1].inputs == [StepInput(variable: "BIAS", step: "prepare", key: "bias")])
    #expect(pipeline.tasks[1].retries == RetryPolicy(attempts: 2, backoffSeconds: 10, maxBackoffSeconds: 60))
    #expect(pipeline.tasks[1].resources == Resources(cpuMillicores: 1000, memoryBytes: 512 << 20, scratchBytes: 1 << 30))
    #expect(pipeline.tasks[0].driver == .podman(
        image: "localhost/specola-mini", command: "/bin/sh",
        args: ["-c", "echo preparing bias frame; echo specola-output: bias=bias-m31.fits"]))
    #expect(pipeline.tasks[0].outputs == ["bias"])
    #expect(pipeline.tasks[2].inputs == [StepInput(variable: "FRAMES", step: "calibrate", key: "frame")])

    let job = try JobSpecParser.parse(TestFiles.text("Samples/simulate-job.yaml"), file: "simulate-job.yaml").get()
    #expect(job.kind == .job && job.spread)
    #expect(job.metadata.priority == JobMetadata.defaultPriority)
    #expect(job.tasks[0].array?.indices == 0...15)
    #expect(job.tasks[0].constraints == [Constraint(label: "arch", op: .equal, values: ["x86_64"])])
    #expect(job.tasks[0].affinities == [Affinity(Constraint(label: "rack", op: .in, values: ["r1", "r2"]), weight: 30)])
    #expect(job.tasks[0].timeoutSeconds == 7200)
}

@Test(.watchesCooperativePool) func aBadSizeNamesFileLineColumnAndField() {
    let yaml = header + """
        tasks:
          - name: t
            driver: exec
            command: /bin/true
            resources:
              memory: 4 gigs
        """
    #expect(problems(yaml, file: "reduce.yaml") == [
        "reduce.yaml:9:15: field 'tasks[0].resources.memory': '4 gigs' is not a size; write e.g. 4GiB"
    ])
}

@Test(.watchesCooperativePool) func everyProblemIsReportedNotJustTheFirst() {
    let yaml = header + """
        tasks:
          - name: t
            driver: exec
            command: /bin/true
            resouces: {cpu: 2}
            count: 0
          - name: u
            driver: docker
            resources: {cpu: -1, memory: 1GiB, gpus: 1}
            timeout: soon
        """
    let found = problems(yaml)
    #expect(found == [
        "spec.yaml:8:5: field 'tasks[0].resouces': unknown field; did you mean 'resources'?",
        "spec.yaml:9:12: field 'tasks[0].count': 0 is out of range; allowed 1...100000",
        "spec.yaml:11:13: field 'tasks[1].driver': 'docker' is not a driver; write podman or exec",
        "spec.yaml:12:22: field 'tasks[1].resources.cpu': '-1' is negative; cpu is a number of cores, e.g. 2 or 0.5",
        "spec.yaml:13:14: field 'tasks[1].timeout': 'soon' is not a positive duration; write e.g. 90, 90s, 30m or 1h30m",
    ])
}

@Test(.watchesCooperativePool) func missingAndMisplacedFieldsAreNamed() {
    let yaml = """
        apiVersion: specola/v2
        kind: Job
        metadata: {name: j, owner: ann}
        tasks:
          - name: t
            driver: podman
            depends: [x]
        """
    let found = problems(yaml)
    #expect(found.contains("spec.yaml:1:13: field 'apiVersion': 'specola/v2' is not supported; write 'specola/v1'"))
    #expect(found.contains("spec.yaml:3:11: field 'metadata.project': is required"))
    #expect(found.contains("spec.yaml:5:5: field 'tasks[0].image': is required"))
    #expect(found.contains("spec.yaml:7:5: field 'tasks[0].depends': 'depends' is only allowed on steps of kind: Pipeline"))
}

@Test(.watchesCooperativePool) func duplicateNamesPointAtTheSecondOne() {
    let yaml = header + """
        tasks:
          - {name: t, driver: exec, command: /bin/true}
          - {name: t, driver: exec, command: /bin/false}
        """
    #expect(problems(yaml) == ["spec.yaml:6:12: field 'tasks[1].name': 't' is already the name of tasks[0] (line 5)"])
}

@Test(.watchesCooperativePool) func pipelineCyclesAndUnknownDependsAreNamed() {
    let yaml = """
        apiVersion: specola/v1
        kind: Pipeline
        metadata: {name: p, owner: ann, project: survey}
        steps:
          - {name: a, driver: exec, command: /bin/true, depends: [c]}
          - {name: b, driver: exec, command: /bin/true, depends: [a]}
          - {name: c, driver: exec, command: /bin/true, depends: [b, calibrat]}
          - {name: calibrate, driver: exec, command: /bin/true}
        """
    #expect(problems(yaml) == [
        "spec.yaml:5:59: field 'steps[0].depends': steps form a cycle: a -> c -> b -> a (each depends on the next)",
        "spec.yaml:7:62: field 'steps[2].depends': 'calibrat' is not a step; did you mean 'calibrate'?",
    ])
}

@Test(.watchesCooperativePool) func inputsMustReferenceDeclaredUpstreamOutputs() {
    let yaml = """
        apiVersion: specola/v1
        kind: Pipeline
        metadata: {name: p, owner: ann, project: survey}
        steps:
          - {name: a, driver: exec, command: /bin/true, outputs: [bias]}
          - {name: b, driver: exec, command: /bin/true, outputs: [flat]}
          - name: c
            driver: exec
            command: /bin/true
            depends: [a]
            inputs:
              BIAS: steps.a.outputs.bias
              DARK: steps.a.outputs.dark
              FLAT: steps.b.outputs.flat
              SKY: steps.z.outputs.sky
              BAD: a.bias
        """
    #expect(problems(yaml) == [
        "spec.yaml:13:13: field 'steps[2].inputs.DARK': step 'a' declares no output 'dark'; add it to its 'outputs'",
        "spec.yaml:14:13: field 'steps[2].inputs.FLAT': reads 'b' but does not depend on it, so the value may not exist yet; add it to 'depends'",
        "spec.yaml:15:12: field 'steps[2].inputs.SKY': 'z' is not a step",
        "spec.yaml:16:12: field 'steps[2].inputs.BAD': 'a.bias' is not a reference; write steps.STEP.outputs.KEY",
    ])
}

@Test(.watchesCooperativePool) func impossibleValuesAreRejected() {
    let yaml = header + """
        task:
          name: t
          driver: exec
          command: /bin/true
          image: busybox
          resources: {cpu: 0, memory: 0, gpus: -2}
          array: {range: 9-3}
          env: {SPECOLA_ITEM: x, 1BAD: y}
          mounts: [{source: archive, target: /archive}]
          retries: {backoff: 1m, maxBackoff: 10s}
          constraints: [{label: gpu, op: in}]
          affinities: [{label: rack, value: r1, weight: 0}]
        """
    let found = problems(yaml)
    let fields = found.map { $0.split(separator: "'")[1] }
    #expect(fields == [
        "task.image", "task.resources.cpu", "task.resources.memory", "task.resources.gpus", "task.array.range",
        "task.env.SPECOLA_ITEM", "task.env.1BAD", "task.mounts[0].source", "task.retries.maxBackoff",
        "task.constraints[0]", "task.affinities[0].weight",
    ])
}

@Test(.watchesCooperativePool) func brokenYamlReportsWhereLibyamlStopped() {
    let found = problems("apiVersion: specola/v1\nkind: [Job\n")
    #expect(found.count == 1)
    #expect(found[0].hasPrefix("spec.yaml:3:1: not valid YAML"))
}

@Test(.watchesCooperativePool) func constraintsAcceptEveryOperator() throws {
    let spec = try parsed(header + """
        task:
          name: t
          driver: exec
          command: /bin/true
          constraints:
            - {label: gpu, value: a100}
            - {label: site, op: "!=", value: south}
            - {label: rack, op: in, values: [r1, r2]}
            - {label: os, op: notin, values: [centos7]}
            - {label: ssd, op: exists}
        """)
    #expect(spec.tasks[0].constraints.map(\.description) == ["gpu=a100", "site!=south", "rack in (r1, r2)", "os notin (centos7)", "exists(ssd)"])
    let labels = ["gpu": "a100", "rack": "r2", "ssd": "yes"]
    #expect(spec.tasks[0].constraints.allSatisfy { $0.isSatisfied(by: labels) })
    #expect(!spec.tasks[0].constraints.allSatisfy { $0.isSatisfied(by: ["gpu": "a100", "rack": "r2"]) })
}

@Test(.watchesCooperativePool, .timeLimit(.minutes(1))) func anchorsAndAliasesAreRefusedBeforeAnythingIsExpanded() {
    let yaml = header + """
        tasks:
          - name: t
            driver: exec
            command: /bin/echo
            args: [&big "\(String(repeating: "x", count: 65_536))", *big, *big, *big]
        """
    let found = problems(yaml, file: "alias.yaml")
    #expect(found.count == 1)
    #expect(found.first?.hasPrefix("alias.yaml:8:12:") == true, "\(found)")
    #expect(found.first?.contains("anchors and aliases") == true, "\(found)")

    // Nested references ("billion laughs"): 10 levels of 10 would be 10^10 strings expanded.
    var laughs = header + "x0: &l0 \"lol\"\n"
    for level in 1...10 {
        laughs += "x\(level): &l\(level) [" + Array(repeating: "*l\(level - 1)", count: 10).joined(separator: ", ") + "]\n"
    }
    #expect(problems(laughs).contains { $0.contains("anchors and aliases") })
}

@Test(.watchesCooperativePool) func aSpecOverOneMebibyteIsRefused() {
    let yaml = header + "# " + String(repeating: "x", count: JobSpecParser.maxBytes) + "\n"
    #expect(problems(yaml).first?.contains("at most 1048576 (1 MiB)") == true)
}

@Test(.watchesCooperativePool) func anImageThatCouldPassForAPodmanFlagIsRefused() throws {
    for image in ["--privileged", "-v/:/host", "busybox latest", "a//b", ""] {
        let yaml = header + """
            tasks:
              - name: t
                driver: podman
                image: "\(image)"
            """
        #expect(problems(yaml).contains { $0.contains("field 'tasks[0].image'") }, "\(image) was accepted")
    }
    for image in ["localhost/specola-mini", "docker.io/library/busybox:1.36", "registry:5000/astro/reduce:v2.1",
                  "quay.io/a/b@sha256:" + String(repeating: "a", count: 64)] {
        let yaml = header + """
            tasks:
              - name: t
                driver: podman
                image: "\(image)"
            """
        #expect(problems(yaml).isEmpty, "\(image): \(problems(yaml))")
    }
}

@Test(.watchesCooperativePool) func mountingTheHostRootIsRefused() {
    let found = problems(header + """
        task:
          name: t
          driver: podman
          image: busybox
          mounts: [{source: /, target: /host}]
        """)
    #expect(found == [
        "spec.yaml:8:21: field 'task.mounts[0].source': mounting '/' hands the task the whole host; mount only the directory it needs (nodes allow those listed in their agent's tasks.mountPrefixes)",
    ])
}

@Test(.watchesCooperativePool) func mountPathsMustBePlainAbsolutePaths() {
    let found = problems(header + """
        task:
          name: t
          driver: podman
          image: busybox
          mounts:
            - {source: /srv/archive/../../etc, target: /in}
            - {source: data, target: /data}
            - {source: /srv/./x, target: /x/}
        """)
    #expect(found == [
        "spec.yaml:9:16: field 'task.mounts[0].source': '/srv/archive/../../etc' must be written plainly: no '.', '..', '//' or trailing '/'",
        "spec.yaml:10:16: field 'task.mounts[1].source': 'data' must be an absolute path",
        "spec.yaml:11:16: field 'task.mounts[2].source': '/srv/./x' must be written plainly: no '.', '..', '//' or trailing '/'",
        "spec.yaml:11:34: field 'task.mounts[2].target': '/x/' must be written plainly: no '.', '..', '//' or trailing '/'",
    ])
}

@Test(.watchesCooperativePool) func mountsAreReadOnlyUnlessTheSpecSaysOtherwise() throws {
    let spec = try parsed(header + """
        task:
          name: t
          driver: podman
          image: busybox
          mounts: [{source: /srv/archive, target: /archive}, {source: /scratch/j, target: /out, readOnly: false}]
        """)
    #expect(spec.tasks[0].mounts.map(\.readOnly) == [true, false])
}
