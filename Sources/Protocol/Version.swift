/// Build identity shared by all three programs.
public enum SpecolaVersion {
    public static let current = "0.1.0-dev"
}
