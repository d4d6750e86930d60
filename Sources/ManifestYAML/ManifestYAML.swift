import Diagnostics
import Yams

/// What the Kubernetes-style manifest readers (policies, services) share:
/// mapping fields by name, how a node is described in an error, where a YAML
/// syntax error or a duplicate key is, typo suggestions and name rules. Each
/// reader reports a `ManifestError` (its own name for it is a typealias).

/// A manifest that cannot be used, with where and why (policies and services alike).
/// `description`: `FILE:LINE:COLUMN: what is wrong; what would be valid`.
public struct ManifestError: Error, CustomStringConvertible, Sendable, Equatable {
    public var file: String
    public var line: Int
    public var column: Int
    public var problem: String

    public init(file: String, line: Int, column: Int, problem: String) {
        self.file = file
        self.line = line
        self.column = column
        self.problem = problem
    }

    public var description: String { "\(file):\(line):\(column): \(problem)" }
}

/// One mapping node with its keys read as names, in document order.
public struct YAMLFields {
    public struct Entry {
        public var key: Node
        public var name: String
        public var value: Node
        public init(key: Node, name: String, value: Node) {
            self.key = key
            self.name = name
            self.value = value
        }
    }

    public var node: Node
    public var path: String
    public var entries: [Entry]

    public init(node: Node, path: String, entries: [Entry]) {
        self.node = node
        self.path = path
        self.entries = entries
    }

    public func entry(_ name: String) -> Entry? { entries.first { $0.name == name } }

    /// The entry, unless absent or null.
    public func value(_ name: String) -> Entry? { entries.first { $0.name == name && !$0.value.isNullScalar } }
}

extension Node {
    /// How many values a document may have once its aliases (`*name`) are expanded. Readers
    /// walk every expanded value: 1 KB of nested aliases can stand for billions (seen: 60 s
    /// and 1.4 GB for a 1,155-byte policy). A real manifest has a few thousand.
    public static let expansionBudget = 200_000

    /// The value at which the expanded document passes `expansionBudget`, or nil when it stays
    /// within it. Costs at most the budget's steps, however the aliases nest.
    public func beyondExpansionBudget() -> Node? {
        var count = 0
        var stack: [Node] = [self]
        while let node = stack.popLast() {
            count += 1
            if count > Self.expansionBudget { return node }
            switch node {
            case .mapping(let m): for (k, v) in m { stack.append(k); stack.append(v) }
            case .sequence(let s): stack.append(contentsOf: s)
            default: break
            }
        }
        return nil
    }

    /// The error text for a document beyond the budget.
    public static let expansionProblem = "the document has more than \(expansionBudget) values once its aliases (*name) are "
        + "expanded; write the repeated parts out, or split the document"

    public var tagName: Tag.Name { Tag.Name(rawValue: tag.rawValue) }

    public var isNullScalar: Bool {
        if case .scalar = self { return tagName == .null }
        return false
    }

    /// How an error names what it found: "a mapping", "the number 8080", "the string \"web\"".
    public var described: String {
        switch self {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let scalar):
            let text = scalar.string
            switch tagName {
            case .null: return text.isEmpty ? "nothing (null)" : "null"
            case .bool: return "the boolean \(text)"
            case .int, .float: return "the number \(text)"
            default:
                let shown = text.count > 40 ? text.prefix(40) + "..." : Substring(text)
                return "the string \"\(shown)\""
            }
        }
    }
}

/// The text a reader parses, to place problems, YAML syntax errors and duplicate keys.
public struct ManifestSource: Sendable {
    public let file: String
    public let text: String
    public init(file: String, text: String) {
        self.file = file
        self.text = text
    }

    /// The largest document a reader parses: Kubernetes keeps an object under 1.5 MiB (etcd's
    /// request limit); twice that leaves room, and a bigger one (5 MB took seconds and hundreds
    /// of MB to parse) is refused before any parsing.
    public static let largestDocument = 3 << 20

    /// Refuses a document (the text between `---` lines) larger than `largestDocument`.
    public func checkDocumentSizes() throws(ManifestError) {
        guard text.utf8.count > Self.largestDocument else { return }
        var start = 0, startLine = 1, line = 1, atLineStart = true, offset = 0
        let bytes = Array(text.utf8)
        func check(until end: Int) throws(ManifestError) {
            if end - start > Self.largestDocument {
                throw ManifestError(file: file, line: startLine, column: 1,
                                    problem: "this document is \(end - start) bytes; at most \(Self.largestDocument) are read "
                                        + "(Kubernetes keeps an object under 1.5 MiB); split it into several documents")
            }
        }
        while offset < bytes.count {
            if atLineStart, bytes.count - offset >= 3, bytes[offset] == 0x2D, bytes[offset + 1] == 0x2D, bytes[offset + 2] == 0x2D {
                try check(until: offset)
                start = offset
                startLine = line
            }
            atLineStart = bytes[offset] == 0x0A
            if atLineStart { line += 1 }
            offset += 1
        }
        try check(until: bytes.count)
    }

    /// The problem at `node` (its line and column).
    public func error(at node: Node, _ problem: String) -> ManifestError {
        ManifestError(file: file, line: node.mark?.line ?? 1, column: node.mark?.column ?? 1, problem: problem)
    }

    // MARK: Typed readers

    /// A mapping read as named fields; a list where a mapping belongs gets a hint.
    public func fields(_ node: Node, path: String, what: String) throws(ManifestError) -> YAMLFields {
        guard case .mapping(let mapping) = node else {
            var hint = ""
            if case .sequence = node { hint = "; remove the \"- \" in front of it" }
            throw error(at: node, "\(ManifestText.at(path))expected \(what), got \(node.described)\(hint)")
        }
        var entries: [YAMLFields.Entry] = []
        for (key, value) in mapping {
            guard case .scalar(let scalar) = key, !scalar.string.isEmpty || !key.isNullScalar else {
                throw error(at: key, "\(ManifestText.at(path))expected a field name, got \(key.described)")
            }
            entries.append(YAMLFields.Entry(key: key, name: scalar.string, value: value))
        }
        return YAMLFields(node: node, path: path, entries: entries)
    }

    /// A list. `example` shows a list of mappings (`[{port: 80}]`); without one, a scalar given where the
    /// list belongs is shown wrapped in one.
    public func list(_ node: Node, path: String, of what: String, example: String? = nil) throws(ManifestError) -> [Node] {
        guard case .sequence(let sequence) = node else {
            var hint = ""
            if case .scalar(let scalar) = node, !node.isNullScalar {
                hint = "; write it as a list: " + (example ?? "[\(scalar.string)]")
            }
            if case .mapping = node { hint = "; make it a list element by starting it with \"- \"" }
            throw error(at: node, "\(ManifestText.at(path))expected a list of \(what), got \(node.described)\(hint)")
        }
        return Array(sequence)
    }

    public func bool(_ node: Node, path: String) throws(ManifestError) -> Bool {
        guard case .scalar(let scalar) = node, node.tagName == .bool else {
            throw error(at: node, "\(ManifestText.at(path))expected true or false, got \(node.described)")
        }
        return ["true", "yes", "on"].contains(scalar.string.lowercased())
    }

    /// Where and what for an error Yams threw.
    public func error(for error: any Error) -> ManifestError {
        guard let error = error as? YamlError else { return ManifestError(file: file, line: 1, column: 1, problem: "invalid YAML: \(error)") }
        switch error {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _),
             let .composer(context, problem, mark, _):
            let during = context.map { " (\($0.text) at line \($0.mark.line), column \($0.mark.column))" } ?? ""
            return ManifestError(file: file, line: mark.line, column: mark.column,
                                   problem: "invalid YAML: \(problem)\(during)\(tabHint(line: mark.line))")
        case let .reader(problem, offset, _, _):
            let (line, column) = position(ofUTF8Offset: offset ?? 0)
            return ManifestError(file: file, line: line, column: column, problem: "invalid YAML: \(problem)")
        case let .duplicatedKeysInMapping(duplicates, context):
            return duplicateKey(duplicates.first ?? "?", first: context.mark)
        default:
            return ManifestError(file: file, line: 1, column: 1, problem: "invalid YAML: \(error)")
        }
    }

    func position(ofUTF8Offset offset: Int) -> (line: Int, column: Int) {
        var line = 1
        var column = 1
        for byte in text.utf8.prefix(offset) {
            if byte == UInt8(ascii: "\n") {
                line += 1
                column = 1
            } else if byte & 0xC0 != 0x80 { // a character starts here, not a continuation byte
                column += 1
            }
        }
        return (line, column)
    }

    private var lines: [[Character]] {
        text.split(separator: "\n", omittingEmptySubsequences: false).map(Array.init)
    }

    /// libyaml's complaint about a tab does not mention tabs; say it.
    func tabHint(line: Int) -> String {
        let lines = self.lines
        guard lines.indices.contains(line - 1),
              lines[line - 1].prefix(while: { $0 == " " || $0 == "\t" }).contains("\t") else { return "" }
        return "; this line is indented with a tab, and YAML indents with spaces only"
    }

    /// Yams reports a key given twice at its first occurrence. Point at the second: later on the same line
    /// (flow style, JSON), or at the same column further down, before the mapping ends (block style).
    func duplicateKey(_ name: String, first: Mark) -> ManifestError {
        let lines = self.lines
        let spellings = [name, "\"\(name)\"", "'\(name)'"].map(Array.init)
        func keyStarts(_ line: [Character], at start: Int) -> Bool {
            for spelling in spellings where start + spelling.count <= line.count
                && Array(line[start..<start + spelling.count]) == spelling {
                var index = start + spelling.count
                while index < line.count, line[index] == " " { index += 1 }
                if index < line.count, line[index] == ":" { return true }
            }
            return false
        }
        let index = first.line - 1
        let column = first.column - 1
        if lines.indices.contains(index) {
            let line = lines[index]
            var start = column + 1
            while start < line.count {
                if [" ", "{", ","].contains(line[start - 1]), keyStarts(line, at: start) {
                    return ManifestError(file: file, line: first.line, column: start + 1,
                                           problem: "duplicate key \"\(name)\" (first set at column \(first.column)); keep one")
                }
                start += 1
            }
            for later in lines.indices.dropFirst(index + 1) {
                let line = lines[later]
                let indent = line.prefix { $0 == " " }.count
                let rest = line.dropFirst(indent)
                if rest.allSatisfy({ $0 == " " || $0 == "\r" }) || rest.first == "#" { continue }
                if indent < column { break } // the mapping ended
                if indent == column, keyStarts(line, at: column) {
                    return ManifestError(file: file, line: later + 1, column: column + 1,
                                           problem: "duplicate key \"\(name)\" (first set on line \(first.line)); keep one")
                }
            }
        }
        return ManifestError(file: file, line: first.line, column: first.column,
                               problem: "duplicate key \"\(name)\" in this mapping; keep one")
    }
}

/// Paths, typo suggestions and Kubernetes name rules for error messages.
public enum ManifestText {
    /// "path: " (nothing at the top level).
    public static func at(_ path: String) -> String { path.isEmpty ? "" : "\(path): " }

    public static func join(_ path: String, _ field: String) -> String { path.isEmpty ? field : "\(path).\(field)" }

    /// "; did you mean X?" when there is a suggestion, else "." — either way the sentence is closed.
    public static func endOfSentence(suggesting candidate: String?) -> String {
        candidate.map { "; did you mean \($0)?" } ?? "."
    }

    /// The candidate closest to `name` (ignoring case), if close enough to be a typo.
    public static func suggestion(for name: String, among candidates: [String]) -> String? {
        Suggestion.closest(to: name, among: candidates)
    }

    /// A DNS-1123 label (namespaces, port names): lowercase alphanumerics and '-', alphanumeric at both ends, <= 63.
    public static func isDNS1123Label(_ name: String) -> Bool {
        let alphanumeric: (Character) -> Bool = { $0.isASCII && ($0.isLowercase || $0.isNumber) }
        guard !name.isEmpty, name.count <= 63, let first = name.first, let last = name.last,
              alphanumeric(first), alphanumeric(last) else { return false }
        return name.allSatisfy { alphanumeric($0) || $0 == "-" }
    }

    /// A DNS-1123 subdomain (object names): dot-separated DNS-1123 labels, <= 253 in all.
    public static func isDNSSubdomain(_ name: String) -> Bool {
        guard !name.isEmpty, name.count <= 253 else { return false }
        return name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { isDNS1123Label(String($0)) }
    }
}
