import Yams

/// YAML anchors and aliases let a few bytes stand for any amount of text: 2,000 references
/// to one 64 KiB anchor took a leader from 50 MB to a gigabyte. Specs and workload
/// definitions refuse them.
public enum YAMLAliases {
    /// The single document of `yaml` and its first anchored node, if any. Yams holds anchors
    /// weakly, so they are visible only while the parser that read them lives: look here.
    public static func composeOne(_ yaml: String) throws -> (root: Node?, firstAnchored: Node?) {
        let parser = try Parser(yaml: yaml)
        let root = try parser.singleRoot()
        return withExtendedLifetime(parser) { (root, root.flatMap(firstAnchoredNode(in:))) }
    }

    /// Every document of `yaml`, and the first anchored node among them, if any.
    public static func composeAll(_ yaml: String) throws -> (roots: [Node], firstAnchored: Node?) {
        let parser = try Parser(yaml: yaml)
        var roots: [Node] = []
        while let root = try parser.nextRoot() { roots.append(root) }
        return withExtendedLifetime(parser) { (roots, roots.lazy.compactMap(firstAnchoredNode(in:)).first) }
    }

    /// The first node, in document order, that carries an anchor (`&name`), or nil.
    /// Call it while the parser lives (see `composeOne`).
    /// Every alias repeats a node anchored earlier, so the walk stops before it could visit
    /// a shared node twice: its cost is linear in the input whatever the aliases expand to.
    public static func firstAnchoredNode(in root: Node) -> Node? {
        if root.anchor != nil { return root }
        switch root {
        case .scalar, .alias:
            return nil
        case .mapping(let mapping):
            for (key, value) in mapping {
                if let found = firstAnchoredNode(in: key) ?? firstAnchoredNode(in: value) { return found }
            }
            return nil
        case .sequence(let sequence):
            for item in sequence {
                if let found = firstAnchoredNode(in: item) { return found }
            }
            return nil
        }
    }

    public static let refusal = "YAML anchors and aliases (&name, *name) are not accepted: a few bytes could stand for any amount of text; write each value out"
}
