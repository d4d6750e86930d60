import Diagnostics
/// A problem with the node's configuration.
///
/// `description` is one line shaped `WHERE: KEY: what is wrong; what is allowed`, where WHERE is
/// `FILE:LINE:COLUMN` for the config file, `--set KEY=VALUE` for an override, or `KEY=VALUE`
/// for a `cilium config set` edit.
public struct ConfigError: Error, CustomStringConvertible, Equatable, Sendable {
    /// Where the offending text came from.
    public enum Origin: Sendable, Equatable {
        /// A position in a config file (1-based line and column, as Yams reports them).
        case position(file: String, line: Int, column: Int)
        /// A whole file (for example one that cannot be read).
        case file(String)
        /// A Helm-style `--set` override, holding the `KEY=VALUE` text.
        case override(String)
        /// A `cilium config set KEY=VALUE` edit, holding the `KEY=VALUE` text.
        case setting(String)
        /// Nowhere in particular (for example `get` of an unknown key).
        case none
    }

    public var origin: Origin
    /// The schema key the problem is about, when there is one.
    public var key: String?
    /// What is wrong and what is allowed.
    public var problem: String

    public init(origin: Origin, key: String? = nil, problem: String) {
        self.origin = origin
        self.key = key
        self.problem = problem
    }

    public var description: String {
        let keyed = key.map { "\($0): \(problem)" } ?? problem
        switch origin {
        case let .position(file, line, column): return "\(file):\(line):\(column): \(keyed)"
        case let .file(file): return "\(file): \(keyed)"
        // The KEY=VALUE text names the key unless the problem is about another one.
        case let .override(text): return "--set \(Suggestion.excerpt(text)): \(naming(text))"
        case let .setting(text): return "\(Suggestion.excerpt(text)): \(naming(text))"
        case .none: return keyed
        }
    }

    private func naming(_ assignment: String) -> String {
        guard let key, !assignment.hasPrefix(key + "=") else { return problem }
        return "\(key): \(problem)"
    }

    /// The line of `.position` origins, for tests and editors.
    public var line: Int? {
        if case let .position(_, line, _) = origin { return line }
        return nil
    }

    /// The column of `.position` origins.
    public var column: Int? {
        if case let .position(_, _, column) = origin { return column }
        return nil
    }
}
