import Foundation
import Yams

/// Turns spec YAML into a validated `JobSpec`, or into every problem found, each naming file:line:column and field.
///
/// Pure: it reads a string and submits nothing, so `specola job plan` and editors can call it freely.
public enum JobSpecParser {
    /// Largest number of instances one spec may expand to; beyond it a typo in `array.size` is the likelier story.
    public static let maxInstances = 100_000
    /// Largest spec accepted, in bytes: a spec describes work, data stays in the archive.
    public static let maxBytes = 1 << 20

    /// Parses and validates one spec. `file` is only used in error locations.
    public static func parse(_ yaml: String, file: String) -> Result<JobSpec, SpecErrors> {
        var reader = SpecReader(file: file)
        let size = yaml.utf8.count
        guard size <= maxBytes else {
            reader.report(nil, "", "the spec is \(size) bytes; at most \(maxBytes) (1 MiB) are accepted: keep data in the archive or the KV store, not in the spec", .invalidValue)
            return .failure(SpecErrors(reader.errors))
        }
        let root: Node?
        let anchored: Node?
        do {
            (root, anchored) = try YAMLAliases.composeOne(yaml)
        } catch {
            reader.reportSyntax(error)
            return .failure(SpecErrors(reader.errors))
        }
        guard let root else {
            reader.report(nil, "", "the file is empty; a spec starts with 'apiVersion: \(JobSpec.apiVersion)'", .missingField)
            return .failure(SpecErrors(reader.errors))
        }
        if let anchored {
            reader.report(anchored, "", YAMLAliases.refusal, .invalidValue)
            return .failure(SpecErrors(reader.errors))
        }
        var parser = DocumentParser(reader: reader)
        let spec = parser.document(root)
        let errors = parser.reader.errors.sorted { ($0.line, $0.column) < ($1.line, $1.column) }
        if let spec, errors.isEmpty { return .success(spec) }
        return .failure(SpecErrors(errors))
    }
}

/// A task as parsed, with the nodes that later cross-checks point at.
private struct ParsedTask {
    var spec: TaskSpec
    var path: String
    var nameNode: Node
    var dependsNodes: [String: Node]
    var inputNodes: [String: Node]
}

/// The walk over one document; keeps going after errors so that all of them are reported.
private struct DocumentParser {
    var reader: SpecReader

    static let topFields = ["apiVersion", "kind", "metadata", "spread", "task", "tasks", "steps"]
    static let taskFields = [
        "name", "driver", "image", "command", "args", "resources", "constraints", "affinities", "count", "array",
        "env", "mounts", "retries", "timeout",
    ]
    static let stepFields = ["depends", "foreach", "outputs", "inputs"]

    mutating func document(_ root: Node) -> JobSpec? {
        guard let top = reader.fields(root, at: "", allowed: Self.topFields) else { return nil }
        if let version = reader.required(top, "apiVersion"), version != JobSpec.apiVersion {
            reader.report(top["apiVersion"], "apiVersion", "'\(version)' is not supported; write '\(JobSpec.apiVersion)'", .invalidValue)
        }
        var kind: JobSpec.Kind?
        if let text = reader.required(top, "kind") {
            kind = JobSpec.Kind(rawValue: text)
            if kind == nil { reader.report(top["kind"], "kind", "'\(text)' is not a kind; write Job or Pipeline", .invalidValue) }
        }
        let metadata = top["metadata"].flatMap { metadataFields($0) }
        if top["metadata"] == nil { reader.report(root, "metadata", "is required (name, owner, project)", .missingField) }
        let spread = top["spread"].flatMap { reader.bool($0, "spread") } ?? false

        var parsed: [ParsedTask] = []
        switch kind {
        case .pipeline:
            for wrong in ["task", "tasks"] where top[wrong] != nil {
                reader.report(top[wrong], wrong, "a Pipeline has 'steps', not '\(wrong)'", .unknownField)
            }
            if let steps = top["steps"] {
                parsed = taskList(steps, path: "steps", pipeline: true)
            } else {
                reader.report(root, "steps", "is required for kind: Pipeline", .missingField)
            }
        case .job:
            if top["steps"] != nil {
                reader.report(top["steps"], "steps", "'steps' belong to kind: Pipeline; a Job has 'tasks' or 'task'", .unknownField)
            }
            switch (top["tasks"], top["task"]) {
            case (let list?, nil): parsed = taskList(list, path: "tasks", pipeline: false)
            case (nil, let single?): parsed = task(single, path: "task", pipeline: false).map { [$0] } ?? []
            case (_?, _?): reader.report(top["task"], "task", "give either 'task' or 'tasks', not both", .duplicate)
            case (nil, nil): reader.report(root, "tasks", "is required: a list of tasks, or a single 'task'", .missingField)
            }
        case nil:
            break
        }
        crossCheck(parsed)
        let instances = parsed.reduce(0) { total, task in
            total + (task.spec.foreach?.count ?? 1) * (task.spec.array?.indices.count ?? 1) * task.spec.count
        }
        if instances > JobSpecParser.maxInstances {
            reader.report(root, "", "expands to \(instances) instances; at most \(JobSpecParser.maxInstances) per spec", .invalidValue)
        }
        guard let kind, let metadata, reader.errors.isEmpty else { return nil }
        return JobSpec(kind: kind, metadata: metadata, spread: spread, tasks: parsed.map(\.spec))
    }

    mutating func metadataFields(_ node: Node) -> JobMetadata? {
        guard let fields = reader.fields(node, at: "metadata", allowed: ["name", "owner", "project", "priority"]) else { return nil }
        let name = fields["name"].flatMap { reader.name($0, "metadata.name") }
        if fields["name"] == nil { reader.report(node, "metadata.name", "is required", .missingField) }
        let owner = reader.required(fields, "owner")
        // A name: the job's id is PROJECT/NAME.
        let project = fields["project"].flatMap { reader.name($0, "metadata.project") }
        if fields["project"] == nil { reader.report(fields.node, "metadata.project", "is required", .missingField) }
        var priority: Int? = JobMetadata.defaultPriority
        if let node = fields["priority"] { priority = reader.int(node, "metadata.priority", in: 0...100) }
        guard let name, let owner, let project, let priority else { return nil }
        return JobMetadata(name: name, owner: owner, project: project, priority: priority)
    }

    mutating func taskList(_ node: Node, path: String, pipeline: Bool) -> [ParsedTask] {
        guard let elements = reader.list(node, path) else { return [] }
        if elements.isEmpty { reader.report(node, path, "is empty; give at least one", .invalidValue) }
        return elements.enumerated().compactMap { task($0.element, path: "\(path)[\($0.offset)]", pipeline: pipeline) }
    }

    mutating func task(_ node: Node, path: String, pipeline: Bool) -> ParsedTask? {
        let misplaced = pipeline ? [:] : Dictionary(uniqueKeysWithValues: Self.stepFields.map {
            ($0, "'\($0)' is only allowed on steps of kind: Pipeline")
        })
        guard let fields = reader.fields(node, at: path, allowed: Self.taskFields + (pipeline ? Self.stepFields : []), misplaced: misplaced)
        else { return nil }
        let name = fields["name"].flatMap { reader.name($0, fields.path("name")) }
        if fields["name"] == nil { reader.report(node, fields.path("name"), "is required", .missingField) }
        let driver = self.driver(fields)
        let resources = fields["resources"].map { self.resources($0, fields.path("resources")) } ?? TaskSpec.defaultResources
        let constraints = fields["constraints"].map { labelRules($0, fields.path("constraints"), weighted: false).map(\.0) } ?? []
        let affinities = fields["affinities"].map {
            labelRules($0, fields.path("affinities"), weighted: true).map { Affinity($0.0, weight: $0.1) }
        } ?? []
        var count: Int? = 1
        if let node = fields["count"] {
            count = reader.int(node, fields.path("count"), in: 1...JobSpecParser.maxInstances)
        }
        let array = fields["array"].flatMap { self.array($0, fields.path("array")) }
        let env = fields["env"].map { environment($0, fields.path("env")) } ?? [:]
        let mounts = fields["mounts"].map { self.mounts($0, fields.path("mounts")) } ?? []
        let retries = fields["retries"].map { self.retries($0, fields.path("retries")) } ?? .none
        let timeout = fields["timeout"].flatMap { reader.seconds($0, fields.path("timeout")) }

        let depends = fields["depends"].flatMap { reader.strings($0, fields.path("depends")) } ?? []
        var foreach: [String]?
        if let node = fields["foreach"], let items = reader.strings(node, fields.path("foreach"), unique: false) {
            if items.isEmpty { reader.report(node, fields.path("foreach"), "is empty; a foreach step needs at least one item", .invalidValue) }
            foreach = items.map(\.value)
        }
        let outputs = fields["outputs"].flatMap { reader.strings($0, fields.path("outputs")) } ?? []
        for output in outputs where reader.nameOK(output.value) == false {
            reader.report(output.node, fields.path("outputs"), "'\(output.value)' is not a valid key; use letters, digits, '-' and '_'", .invalidValue)
        }
        let inputs = fields["inputs"].map { self.inputs($0, fields.path("inputs")) } ?? []

        guard let name, let driver, let count else { return nil }
        let spec = TaskSpec(
            name: name, driver: driver, resources: resources, constraints: constraints, affinities: affinities,
            count: count, array: array, env: env, mounts: mounts, retries: retries, timeoutSeconds: timeout,
            depends: depends.map(\.value), foreach: foreach, outputs: outputs.map(\.value), inputs: inputs.map(\.0))
        return ParsedTask(
            spec: spec, path: path, nameNode: fields["name"]!,
            dependsNodes: Dictionary(depends.map { ($0.value, $0.node) }, uniquingKeysWith: { a, _ in a }),
            inputNodes: Dictionary(inputs.map { ($0.0.variable, $0.1) }, uniquingKeysWith: { a, _ in a }))
    }

    /// An image reference as registries write them: it starts with a lowercase letter or digit
    /// (never '-', so it cannot pass for a podman flag) and holds only the characters of
    /// registry hosts, ports, repository paths, tags and digests.
    static func isImageReference(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, text.utf8.count <= 512, !text.contains("//") else { return false }
        let lowercaseOrDigit = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyz0123456789")
        let allowed = lowercaseOrDigit.union(CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZ._-/:@+"))
        return lowercaseOrDigit.contains(first) && text.unicodeScalars.allSatisfy { allowed.contains($0) }
    }

    mutating func driver(_ fields: SpecFields) -> TaskDriver? {
        guard let kind = reader.required(fields, "driver") else { return nil }
        let command = fields["command"].flatMap { reader.string($0, fields.path("command")) }
        let args = fields["args"].flatMap { reader.strings($0, fields.path("args"), unique: false)?.map(\.value) } ?? []
        switch kind {
        case "podman":
            guard let image = reader.required(fields, "image") else { return nil }
            guard Self.isImageReference(image) else {
                reader.report(fields["image"], fields.path("image"), "'\(image)' is not an image reference; write e.g. localhost/reduce:1.4 or registry.example.org:5000/astro/pipeline@sha256:…", .invalidValue)
                return nil
            }
            return .podman(image: image, command: command, args: args)
        case "exec":
            if let image = fields["image"] {
                reader.report(image, fields.path("image"), "the exec driver runs a host command; remove 'image' or use driver: podman", .invalidValue)
            }
            guard let command else {
                if fields["command"] == nil { reader.report(fields.node, fields.path("command"), "is required for driver: exec", .missingField) }
                return nil
            }
            return .exec(command: command, args: args)
        default:
            reader.report(fields["driver"], fields.path("driver"), "'\(kind)' is not a driver; write podman or exec", .invalidValue)
            return nil
        }
    }

    mutating func resources(_ node: Node, _ path: String) -> Resources {
        var result = TaskSpec.defaultResources
        guard let fields = reader.fields(node, at: path, allowed: ["cpu", "memory", "gpus", "scratch"]) else { return result }
        if let cpu = fields["cpu"], let value = reader.millicores(cpu, fields.path("cpu")) { result.cpuMillicores = value }
        if let memory = fields["memory"], let value = reader.bytes(memory, fields.path("memory"), allowZero: false) {
            result.memoryBytes = value
        }
        if let gpus = fields["gpus"], let value = reader.int(gpus, fields.path("gpus"), in: 0...64, what: "a whole number of GPUs") {
            result.gpus = Int64(value)
        }
        if let scratch = fields["scratch"], let value = reader.bytes(scratch, fields.path("scratch"), allowZero: true) {
            result.scratchBytes = value
        }
        return result
    }

    /// Constraints (`weighted: false`) or affinities (`weighted: true`); each entry `{label, op, value|values, weight}`.
    mutating func labelRules(_ node: Node, _ path: String, weighted: Bool) -> [(Constraint, Int)] {
        guard let elements = reader.list(node, path) else { return [] }
        var result: [(Constraint, Int)] = []
        for (index, element) in elements.enumerated() {
            let entryPath = "\(path)[\(index)]"
            let allowed = ["label", "op", "value", "values"] + (weighted ? ["weight"] : [])
            guard let fields = reader.fields(element, at: entryPath, allowed: allowed) else { continue }
            let label = reader.required(fields, "label")
            var op: Constraint.Operator? = .equal
            if let opNode = fields["op"], let text = reader.string(opNode, fields.path("op")) {
                op = Constraint.Operator(rawValue: text)
                if op == nil {
                    let all = Constraint.Operator.allCases.map(\.rawValue).joined(separator: ", ")
                    reader.report(opNode, fields.path("op"), "'\(text)' is not an operator; use one of \(all)", .invalidValue)
                }
            }
            var values: [String] = []
            if let value = fields["value"], let text = reader.string(value, fields.path("value")) { values = [text] }
            if let list = fields["values"], let texts = reader.strings(list, fields.path("values")) {
                values += texts.map(\.value)
            }
            switch op {
            case .equal?, .notEqual?:
                if values.count != 1 {
                    reader.report(element, entryPath, "'\(op!.rawValue)' compares with exactly one 'value'", .invalidValue)
                }
            case .in?, .notIn?:
                if values.isEmpty { reader.report(element, entryPath, "'\(op!.rawValue)' needs 'values: [...]'", .invalidValue) }
            case .exists?:
                if !values.isEmpty { reader.report(element, entryPath, "'exists' takes no value", .invalidValue) }
            case nil: break
            }
            var weight = 0
            if weighted {
                if let node = fields["weight"], let value = reader.int(node, fields.path("weight"), in: -100...100) {
                    weight = value
                    if value == 0 { reader.report(node, fields.path("weight"), "a weight of 0 has no effect; use -100...100 except 0", .invalidValue) }
                } else if fields["weight"] == nil {
                    reader.report(element, fields.path("weight"), "is required: -100...100, negative to avoid", .missingField)
                }
            }
            if let label, let op { result.append((Constraint(label: label, op: op, values: values), weight)) }
        }
        return result
    }

    mutating func array(_ node: Node, _ path: String) -> TaskArray? {
        guard let fields = reader.fields(node, at: path, allowed: ["size", "range"]) else { return nil }
        switch (fields["size"], fields["range"]) {
        case (let size?, nil):
            guard let count = reader.int(size, fields.path("size"), in: 1...JobSpecParser.maxInstances) else { return nil }
            return TaskArray(indices: 0...(count - 1))
        case (nil, let range?):
            guard let text = reader.string(range, fields.path("range")) else { return nil }
            let bounds = text.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
            guard bounds.count == 2, let low = bounds[0], let high = bounds[1], low <= high else {
                reader.report(range, fields.path("range"), "'\(text)' is not a range; write e.g. 0-99 (inclusive, low first)", .invalidValue)
                return nil
            }
            return TaskArray(indices: low...high)
        case (_?, _?):
            reader.report(node, path, "give either 'size' or 'range', not both", .duplicate)
        case (nil, nil):
            reader.report(node, path, "needs 'size' or 'range'", .missingField)
        }
        return nil
    }

    mutating func environment(_ node: Node, _ path: String) -> [String: String] {
        guard let mapping = node.mapping else {
            reader.report(node, path, "expected a mapping of NAME: value", .wrongType)
            return [:]
        }
        var result: [String: String] = [:]
        for (keyNode, valueNode) in mapping {
            let key = keyNode.scalar?.string ?? ""
            let valid = !key.isEmpty && key.first?.isNumber == false
                && key.unicodeScalars.allSatisfy { $0.isASCII && ($0 == "_" || $0.properties.isAlphabetic || ("0"..."9").contains($0)) }
            if !valid {
                reader.report(keyNode, "\(path).\(key)", "'\(key)' is not a valid environment variable name", .invalidValue)
            } else if key.hasPrefix("SPECOLA_") {
                reader.report(keyNode, "\(path).\(key)", "names starting with SPECOLA_ are set by Specola", .invalidValue)
            } else if result[key] != nil {
                reader.report(keyNode, "\(path).\(key)", "given twice", .duplicate)
            } else if let scalar = valueNode.scalar {
                result[key] = scalar.string
            } else {
                reader.report(valueNode, "\(path).\(key)", "an environment value must be a single value", .wrongType)
            }
        }
        return result
    }

    mutating func mounts(_ node: Node, _ path: String) -> [Mount] {
        guard let elements = reader.list(node, path) else { return [] }
        var result: [Mount] = []
        var targets: Set<String> = []
        for (index, element) in elements.enumerated() {
            guard let fields = reader.fields(element, at: "\(path)[\(index)]", allowed: ["source", "target", "readOnly"]) else { continue }
            let source = reader.required(fields, "source")
            let target = reader.required(fields, "target")
            let readOnly = fields["readOnly"].flatMap { reader.bool($0, fields.path("readOnly")) } ?? true
            for (name, value) in [("source", source), ("target", target)] {
                guard let value, let problem = Mount.pathProblem(value) else { continue }
                reader.report(fields[name], fields.path(name), "'\(value)' \(problem)", .invalidValue)
            }
            if source == "/" {
                reader.report(fields["source"], fields.path("source"), "mounting '/' hands the task the whole host; mount only the directory it needs (nodes allow those listed in their agent's tasks.mountPrefixes)", .invalidValue)
            }
            if let target, !targets.insert(target).inserted {
                reader.report(fields["target"], fields.path("target"), "'\(target)' is mounted twice", .duplicate)
            }
            if let source, let target { result.append(Mount(source: source, target: target, readOnly: readOnly)) }
        }
        return result
    }

    mutating func retries(_ node: Node, _ path: String) -> RetryPolicy {
        var policy = RetryPolicy()
        guard let fields = reader.fields(node, at: path, allowed: ["attempts", "backoff", "maxBackoff"]) else { return policy }
        if let attempts = fields["attempts"], let value = reader.int(attempts, fields.path("attempts"), in: 0...100) {
            policy.attempts = value
        }
        if let backoff = fields["backoff"], let value = reader.seconds(backoff, fields.path("backoff")) { policy.backoffSeconds = value }
        if let maximum = fields["maxBackoff"], let value = reader.seconds(maximum, fields.path("maxBackoff")) {
            policy.maxBackoffSeconds = value
            if value < policy.backoffSeconds {
                reader.report(maximum, fields.path("maxBackoff"), "is shorter than backoff (\(policy.backoffSeconds)s)", .invalidValue)
            }
        } else if policy.maxBackoffSeconds < policy.backoffSeconds {
            policy.maxBackoffSeconds = policy.backoffSeconds
        }
        return policy
    }

    mutating func inputs(_ node: Node, _ path: String) -> [(StepInput, Node)] {
        guard let mapping = node.mapping else {
            reader.report(node, path, "expected a mapping of NAME: steps.STEP.outputs.KEY", .wrongType)
            return []
        }
        var result: [(StepInput, Node)] = []
        for (keyNode, valueNode) in mapping {
            let variable = keyNode.scalar?.string ?? ""
            let fieldPath = "\(path).\(variable)"
            guard let reference = reader.string(valueNode, fieldPath) else { continue }
            guard let (step, key) = StepInput.parseReference(reference) else {
                reader.report(valueNode, fieldPath, "'\(reference)' is not a reference; write steps.STEP.outputs.KEY", .invalidValue)
                continue
            }
            result.append((StepInput(variable: variable, step: step, key: key), valueNode))
        }
        return result
    }

    /// Checks that need every task: duplicate names, unknown `depends`, cycles, and input references.
    mutating func crossCheck(_ tasks: [ParsedTask]) {
        var firstByName: [String: ParsedTask] = [:]
        for task in tasks {
            if let first = firstByName[task.spec.name] {
                let line = first.nameNode.mark?.line ?? 0
                reader.report(task.nameNode, "\(task.path).name", "'\(task.spec.name)' is already the name of \(first.path) (line \(line))", .duplicate)
            } else {
                firstByName[task.spec.name] = task
            }
        }
        let graph = PipelineGraph(
            steps: tasks.map(\.spec.name),
            depends: Dictionary(tasks.map { ($0.spec.name, $0.spec.depends) }, uniquingKeysWith: { a, _ in a }))
        for problem in graph.problems() {
            switch problem {
            case .unknownDependency(let step, let missing):
                guard let task = firstByName[step] else { continue }
                let hint = SpecReader.closest(to: missing, in: graph.steps).map { "; did you mean '\($0)'?" } ?? ""
                reader.report(task.dependsNodes[missing], "\(task.path).depends", "'\(missing)' is not a step\(hint)", .unknownReference)
            case .cycle(let loop):
                guard let task = firstByName[loop[0]] else { continue }
                let node = task.dependsNodes[loop[1]] ?? task.nameNode
                reader.report(node, "\(task.path).depends", "steps form a cycle: \(loop.joined(separator: " -> ")) (each depends on the next)", .cycle)
            }
        }
        for task in tasks {
            let upstream = graph.upstream(of: task.spec.name)
            for input in task.spec.inputs {
                let node = task.inputNodes[input.variable]
                let path = "\(task.path).inputs.\(input.variable)"
                guard let producer = firstByName[input.step] else {
                    reader.report(node, path, "'\(input.step)' is not a step", .unknownReference)
                    continue
                }
                if !producer.spec.outputs.contains(input.key) {
                    reader.report(node, path, "step '\(input.step)' declares no output '\(input.key)'; add it to its 'outputs'", .unknownReference)
                } else if !upstream.contains(input.step) {
                    reader.report(node, path, "reads '\(input.step)' but does not depend on it, so the value may not exist yet; add it to 'depends'", .unknownReference)
                }
            }
        }
    }
}
