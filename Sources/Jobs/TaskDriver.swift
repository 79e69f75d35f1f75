/// What a task runs: a container image under podman, or a plain command under exec.
public enum TaskDriver: Sendable, Hashable, Codable {
    /// A container; `command` overrides the image's entrypoint when set.
    case podman(image: String, command: String?, args: [String])
    /// A process on the host, limited by cgroups where the node allows.
    case exec(command: String, args: [String])

    /// `podman` or `exec`, as written in a spec.
    public var name: String {
        switch self {
        case .podman: return "podman"
        case .exec: return "exec"
        }
    }
}
