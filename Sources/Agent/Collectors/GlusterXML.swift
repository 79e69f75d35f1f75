import Foundation
import SpecolaProtocol

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// What could not be read from one `gluster ... --xml` answer.
struct GlusterXMLError: Error, CustomStringConvertible {
    enum Code: Sendable {
        /// Not XML, or not a `<cliOutput>` document.
        case malformed
        /// glusterd answered with opRet != 0; the message is its opErrstr.
        case refused
        /// A required element is missing or not a number.
        case missingField
    }

    let code: Code
    let message: String

    var description: String { message }
}

/// Parsers for the gluster CLI's `--xml` answers (checked against glusterfs 10.3).
///
/// Gluster's XML is loose: the heal summary of a brick that is down holds text where its
/// counters should be, a stopped volume answers with opRet -1, and fields come and go
/// between versions. The parsers take what is there and leave unset what is not; one
/// volume that cannot be read never hides the others.
enum GlusterXML {
    /// The local peer's UUID and every peer of the pool, from `pool list --xml`.
    static func peers(_ data: Data) throws -> (localUUID: String, peers: [Specola_V1_GlusterPeer]) {
        let root = try document(data)
        var localUUID = ""
        var peers: [Specola_V1_GlusterPeer] = []
        for element in root.all("peerStatus/peer") {
            var peer = Specola_V1_GlusterPeer()
            peer.uuid = element.text("uuid")
            peer.hostname = element.text("hostname")
            peer.connected = element.text("connected") == "1"
            peer.state = element.text("stateStr")
            // `pool list` names the peer that answers "localhost".
            peer.local = peer.hostname == "localhost"
            if peer.local { localUUID = peer.uuid }
            guard !peer.uuid.isEmpty else { continue }
            peers.append(peer)
        }
        guard !localUUID.isEmpty else {
            throw GlusterXMLError(code: .missingField, message: "pool list has no localhost entry (is this `gluster pool list`?)")
        }
        return (localUUID, peers.sorted { ($0.local ? 0 : 1, $0.hostname) < ($1.local ? 0 : 1, $1.hostname) })
    }

    /// Every volume of `volume info --xml`, with its bricks (not yet marked local) and the
    /// options set on it. A volume element that cannot be read is skipped and named in `errors`.
    static func volumes(_ data: Data) throws -> (volumes: [Specola_V1_GlusterVolume], errors: [String]) {
        let root = try document(data)
        var volumes: [Specola_V1_GlusterVolume] = []
        var errors: [String] = []
        for (index, element) in root.all("volInfo/volumes/volume").enumerated() {
            do {
                volumes.append(try volume(element))
            } catch {
                let name = element.text("name")
                errors.append("volume \(name.isEmpty ? "#\(index + 1)" : name): volume info: \(error)")
            }
        }
        return (volumes.sorted { $0.name < $1.name }, errors)
    }

    private static func volume(_ element: XMLElement) throws -> Specola_V1_GlusterVolume {
        var volume = Specola_V1_GlusterVolume()
        volume.name = try element.required("name")
        volume.id = element.text("id")
        volume.type = element.text("typeStr")
        volume.status = element.text("statusStr")
        volume.brickCount = element.number("brickCount") ?? 0
        volume.distributeCount = element.number("distCount") ?? 0
        volume.replicaCount = element.number("replicaCount") ?? 0
        volume.arbiterCount = element.number("arbiterCount") ?? 0
        volume.disperseCount = element.number("disperseCount") ?? 0
        volume.redundancyCount = element.number("redundancyCount") ?? 0
        // Bricks of one replica (or disperse) set are consecutive in gluster's order.
        let setSize = Int(max(volume.disperseCount, volume.replicaCount, 1))
        for (index, brickElement) in element.all("bricks/brick").enumerated() {
            // <name> is HOST:PATH; older releases put it only in the element's own text.
            let name = brickElement.text("name").isEmpty ? brickElement.ownText : brickElement.text("name")
            guard let (host, path) = splitBrickName(name) else {
                throw GlusterXMLError(code: .missingField, message: "brick #\(index + 1) has no HOST:PATH name ('\(name)')")
            }
            var brick = Specola_V1_GlusterBrick()
            brick.host = host
            brick.path = path
            brick.peerUuid = brickElement.text("hostUuid").isEmpty
                ? (brickElement.attribute(forName: "uuid")?.stringValue ?? "") : brickElement.text("hostUuid")
            brick.arbiter = brickElement.text("isArbiter") == "1"
            brick.replicaSet = UInt32(index / setSize)
            volume.bricks.append(brick)
        }
        for option in element.all("options/option") {
            let name = option.text("name")
            guard !name.isEmpty else { continue }
            volume.options[name] = option.text("value")
        }
        return volume
    }

    /// "HOST:PATH" split at the first colon followed by a slash (IPv6 hosts hold colons too).
    static func splitBrickName(_ name: String) -> (host: String, path: String)? {
        guard let range = name.range(of: ":/") else { return nil }
        let host = String(name[..<range.lowerBound])
        let path = String(name[name.index(after: range.lowerBound)...])
        return host.isEmpty ? nil : (host, path)
    }

    /// A process of `volume status VOL --xml`: a brick's or a daemon's.
    struct ProcessStatus: Equatable {
        var online: Bool
        var pid: Int32
        var port: UInt32
    }

    /// One volume's `volume status VOL --xml`: brick processes by "HOST:PATH" and
    /// self-heal daemons by peer UUID.
    struct VolumeStatus: Equatable {
        var bricks: [String: ProcessStatus] = [:]
        var selfHealDaemons: [String: ProcessStatus] = [:]
    }

    static func status(_ data: Data) throws -> VolumeStatus {
        let root = try document(data)
        var result = VolumeStatus()
        for node in root.all("volStatus/volumes/volume/node") {
            let process = ProcessStatus(
                online: node.text("status") == "1",
                pid: Int32(node.text("pid")).flatMap { $0 > 0 ? $0 : nil } ?? 0,
                port: UInt32(node.text("port")) ?? 0)
            let hostname = node.text("hostname")
            switch hostname {
            case "Self-heal Daemon":
                result.selfHealDaemons[node.text("peerid")] = process
            case "NFS Server", "Quota Daemon", "Bitrot Daemon", "Scrubber Daemon", "Snapshot Daemon", "":
                continue
            default:
                result.bricks["\(hostname):\(node.text("path"))"] = process
            }
        }
        return result
    }

    /// A brick's counters from `volume heal VOL info summary --xml`; nil where gluster wrote none.
    struct HealCounts: Equatable {
        var status: String
        var total: UInt64?
        var pending: UInt64?
        var splitBrain: UInt64?
        var possiblyHealing: UInt64?
    }

    /// Heal counters by "HOST:PATH". A brick that is down has a status full of run-on text
    /// ("Failed to process entries completely. (Transport endpoint is not connected)totalNumberOfEntries0")
    /// and no counters: its status is cut before the stray field name, and the counters stay nil.
    static func healSummary(_ data: Data) throws -> [String: HealCounts] {
        let root = try document(data)
        var result: [String: HealCounts] = [:]
        for brick in root.all("healInfo/bricks/brick") {
            let name = brick.text("name")
            guard !name.isEmpty else { continue }
            var status = brick.text("status")
            if let stray = status.range(of: "totalNumberOfEntries") {
                status = String(status[..<stray.lowerBound]).trimmingCharacters(in: .whitespaces)
            }
            result[name] = HealCounts(
                status: status, total: brick.count("totalNumberOfEntries"),
                pending: brick.count("numberOfEntriesInHealPending"),
                splitBrain: brick.count("numberOfEntriesInSplitBrain"),
                possiblyHealing: brick.count("numberOfEntriesPossiblyHealing"))
        }
        return result
    }

    /// The files `volume heal VOL info split-brain --xml` lists (paths, or `<gfid:...>` for
    /// entries without a known path), each once, in the order of the first brick that lists it.
    static func splitBrainFiles(_ data: Data) throws -> [String] {
        let root = try document(data)
        var files: [String] = []
        var seen: Set<String> = []
        for brick in root.all("healInfo/bricks/brick") {
            for file in brick.elements(forName: "file") {
                var name = (file.stringValue ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
                if name.isEmpty, let gfid = file.attribute(forName: "gfid")?.stringValue { name = "<gfid:\(gfid)>" }
                if !name.isEmpty, seen.insert(name).inserted { files.append(name) }
            }
        }
        return files
    }

    /// `volume get VOL all --xml` (or one option): option name to value, gluster's
    /// " (DEFAULT)" marker dropped.
    static func options(_ data: Data) throws -> [String: String] {
        let root = try document(data)
        var result: [String: String] = [:]
        for option in root.all("volGetopts/Opt") {
            let name = option.text("Option")
            guard !name.isEmpty else { continue }
            var value = option.text("Value")
            if value.hasSuffix(" (DEFAULT)") { value = String(value.dropLast(" (DEFAULT)".count)) }
            result[name] = value
        }
        return result
    }

    /// The `<cliOutput>` root, after checking opRet.
    static func document(_ data: Data) throws -> XMLElement {
        let start = String(decoding: data.prefix(120), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let notXML = GlusterXMLError(code: .malformed, message: "not XML: \(start.isEmpty ? "empty output" : "'\(start)'")")
        // FoundationXML crashes on input in which libxml2 finds no document at all.
        guard start.hasPrefix("<") else { throw notXML }
        let document: XMLDocument
        do {
            document = try XMLDocument(data: data, options: [])
        } catch {
            throw notXML
        }
        guard let root = document.rootElement(), root.name == "cliOutput" else {
            throw GlusterXMLError(code: .malformed, message: "no <cliOutput> element")
        }
        if let opRet = Int(root.text("opRet")), opRet != 0 {
            var message = root.text("opErrstr")
            if message.isEmpty { message = root.text("output") }
            if message.isEmpty { message = "opRet \(opRet), opErrno \(root.text("opErrno"))" }
            throw GlusterXMLError(code: .refused, message: message)
        }
        return root
    }
}

extension XMLElement {
    /// Elements along a slash-separated path of child names.
    fileprivate func all(_ path: String) -> [XMLElement] {
        var level = [self]
        for name in path.split(separator: "/") {
            level = level.flatMap { $0.elements(forName: String(name)) }
        }
        return level
    }

    /// The trimmed text of the first child named `name`, "" when there is none.
    fileprivate func text(_ name: String) -> String {
        (elements(forName: name).first?.stringValue ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    fileprivate func required(_ name: String) throws -> String {
        let value = text(name)
        guard !value.isEmpty else {
            throw GlusterXMLError(code: .missingField, message: "no <\(name)>")
        }
        return value
    }

    fileprivate func number(_ name: String) -> UInt32? { UInt32(text(name)) }

    fileprivate func count(_ name: String) -> UInt64? { UInt64(text(name)) }

    /// Text directly inside this element, outside its children.
    fileprivate var ownText: String {
        (children ?? []).filter { $0.kind == .text }.compactMap(\.stringValue).joined()
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
