import Diagnostics
import Foundation
import ManifestYAML
import Yams

/// A validated value and where it was set.
struct ProvidedValue {
    var value: ConfigValue
    var origin: ConfigError.Origin
}

/// Reads the node's config file (Helm-values-shaped YAML) and `--set` overrides into an `AgentConfig`.
public enum ConfigLoader {
    /// Reads and validates the file at `path`, then applies `overrides` (`KEY=VALUE`, Helm `--set` syntax).
    public static func load(path: String, overrides: [String] = []) throws(ConfigError) -> AgentConfig {
        try parse(yaml: try readFile(path), file: path, overrides: overrides)
    }

    /// Validates YAML text; `file` names it in errors. Absent keys, an empty text and `null` values
    /// take the schema defaults.
    public static func parse(yaml: String, file: String = "values.yaml",
                             overrides: [String] = []) throws(ConfigError) -> AgentConfig {
        var values = try settings(fromYAML: yaml, file: file)
        try apply(overrides: overrides, to: &values)
        try crossCheck(values)
        return AgentConfig(values: values.mapValues(\.value))
    }

    static func readFile(_ path: String) throws(ConfigError) -> String {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ConfigError(origin: .file(path), problem: "no such file")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(origin: .file(path), problem: "cannot read the file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(origin: .file(path), problem: "not UTF-8 text; save the file as UTF-8")
        }
        return text
    }

    /// The settings the text sets, validated one by one (no cross-key checks).
    static func settings(fromYAML yaml: String, file: String) throws(ConfigError) -> [String: ProvidedValue] {
        var values: [String: ProvidedValue] = [:]
        guard let root = try compose(yaml, file: file) else { return values }
        if let at = root.beyondExpansionBudget() { throw ConfigError(origin: origin(of: at, in: file), problem: Node.expansionProblem) }
        switch root {
        case .mapping(let mapping):
            try walk(mapping, section: "", file: file, into: &values)
        case .scalar where RawValue(root).isNull:
            break
        default:
            throw ConfigError(origin: origin(of: root, in: file),
                              problem: "expected a mapping of settings at the top level, got \(RawValue(root).got); "
                                  + "top-level keys are \(schema.children(of: "").joined(separator: ", "))")
        }
        return values
    }

    /// Parses YAML text into a node tree, keeping Yams' line:column for syntax errors.
    static func compose(_ yaml: String, file: String) throws(ConfigError) -> Node? {
        do {
            return try Yams.compose(yaml: yaml, .default, .default, .utf8)
        } catch let error as YamlError {
            if case let .duplicatedKeysInMapping(duplicates, _) = error,
               let found = duplicateKey(among: duplicates, in: yaml, file: file) {
                throw found
            }
            throw syntaxError(error, file: file)
        } catch {
            throw ConfigError(origin: .file(file), problem: "invalid YAML: \(error)")
        }
    }

    /// Yams refuses a mapping with a key given twice but names only the key;
    /// find where (the dotted path, both lines) from the text's indentation.
    static func duplicateKey(among names: [String], in yaml: String, file: String) -> ConfigError? {
        var stack: [(indent: Int, key: String)] = []
        var seen: [String: Int] = [:] // dotted path -> first line
        // "\r\n" is one Character: a CRLF file's lines split on it too.
        for (i, raw) in yaml.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            let line = raw.drop { $0 == " " }
            let indent = raw.count - line.count
            guard !line.isEmpty, !line.hasPrefix("#"), !line.hasPrefix("-"), let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon].trimmingCharacters(in: CharacterSet(charactersIn: "\"' "))
            while let last = stack.last, last.indent >= indent { stack.removeLast() }
            let path = (stack.map(\.key) + [key]).joined(separator: ".")
            stack.append((indent, key))
            guard names.contains(key) else { continue }
            if let first = seen[path] {
                return ConfigError(origin: .position(file: file, line: i + 1, column: indent + 1),
                                   problem: "duplicate key \"\(path)\"; it is already set on line \(first), keep one")
            }
            seen[path] = i + 1
        }
        return nil
    }

    private static func syntaxError(_ error: YamlError, file: String) -> ConfigError {
        switch error {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _),
             let .composer(context, problem, mark, _):
            let while_ = context.map { " (\($0.text) at line \($0.mark.line), column \($0.mark.column))" } ?? ""
            return ConfigError(origin: .position(file: file, line: mark.line, column: mark.column),
                               problem: "invalid YAML: \(problem)\(while_)")
        case let .duplicatedKeysInMapping(duplicates, context):
            // Where the line-based search found nothing (a flow mapping, {a: 1, a: 2}): Yams' mark.
            let names = duplicates.map { "\"\(Suggestion.excerpt($0))\"" }.joined(separator: ", ")
            return ConfigError(origin: .position(file: file, line: context.mark.line, column: context.mark.column),
                               problem: "duplicate key \(names) in this mapping; keep one")
        case let .reader(problem, offset, _, yaml):
            guard let offset else { return ConfigError(origin: .file(file), problem: "invalid YAML: \(problem)") }
            var line = 1, column = 1
            for character in yaml.prefix(offset) {
                if character == "\n" { line += 1; column = 1 } else { column += 1 }
            }
            return ConfigError(origin: .position(file: file, line: line, column: column),
                               problem: "invalid YAML: \(problem)")
        default:
            // Never the whole text (some of Yams' descriptions quote it).
            return ConfigError(origin: .file(file), problem: "invalid YAML: \(Suggestion.excerpt("\(error)", limit: 200))")
        }
    }

    static func origin(of node: Node, in file: String) -> ConfigError.Origin {
        let mark = node.mark
        return .position(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1)
    }

    private static func walk(_ mapping: Node.Mapping, section: String, file: String,
                             into values: inout [String: ProvidedValue]) throws(ConfigError) {
        var seen: [String: Int] = [:]
        for (keyNode, valueNode) in mapping {
            guard case let .scalar(scalar) = keyNode else {
                throw ConfigError(origin: origin(of: keyNode, in: file),
                                  problem: "expected a key name, got \(RawValue(keyNode).got)")
            }
            let name = scalar.string
            let path = section.isEmpty ? name : section + "." + name
            if let line = seen[name] {
                throw ConfigError(origin: origin(of: keyNode, in: file),
                                  problem: "duplicate key \"\(path)\"; it is already set on line \(line), keep one")
            }
            seen[name] = keyNode.mark?.line ?? 0
            let raw = RawValue(valueNode)
            if name.contains(".") || name.isEmpty {
                throw ConfigError(origin: origin(of: keyNode, in: file),
                                  problem: schema.unknownFileKeyProblem(name: name, section: section))
            }
            if let key = schema.key(path) {
                if raw.isNull { continue }
                do {
                    let value = try key.validate(raw, syntax: .yaml)
                    values[path] = ProvidedValue(value: value, origin: origin(of: valueNode, in: file))
                } catch {
                    let position = error.position ?? raw.position ?? Position(line: 1, column: 1)
                    throw ConfigError(origin: .position(file: file, line: position.line, column: position.column),
                                      key: path, problem: error.problem)
                }
            } else if schema.isSection(path) {
                if case let .mapping(inner) = valueNode {
                    try walk(inner, section: path, file: file, into: &values)
                } else if !raw.isNull {
                    throw ConfigError(origin: origin(of: valueNode, in: file), key: path,
                                      problem: "expected a mapping, got \(raw.got); "
                                          + "\(path) has \(schema.children(of: path).joined(separator: ", "))")
                }
            } else {
                throw ConfigError(origin: origin(of: keyNode, in: file),
                                  problem: schema.unknownFileKeyProblem(name: name, section: section))
            }
        }
    }

    /// Applies `--set` overrides in order; later ones win, `KEY=null` restores the default.
    static func apply(overrides: [String], to values: inout [String: ProvidedValue]) throws(ConfigError) {
        for override in overrides {
            for assignment in try HelmSet.parse(override, origin: { .override($0) }) {
                let value = try validate(assignment, origin: .override(assignment.text))
                values[assignment.key] = value.map { ProvidedValue(value: $0, origin: .override(assignment.text)) }
            }
        }
    }

    /// Validates one `KEY=VALUE`; nil means null (the default).
    static func validate(_ assignment: SetAssignment, origin: ConfigError.Origin) throws(ConfigError) -> ConfigValue? {
        guard let key = schema.key(assignment.key) else {
            throw ConfigError(origin: origin, problem: schema.notASettingProblem(assignment.key))
        }
        if assignment.value.isNull { return nil }
        do {
            return try key.validate(assignment.value, syntax: .helmSet)
        } catch {
            throw ConfigError(origin: origin, key: key.path, problem: error.problem)
        }
    }
}

extension RawValue {
    init(_ node: Node) {
        let mark = node.mark.map { Position(line: $0.line, column: $0.column) }
        switch node {
        case .scalar(let scalar):
            self.init(shape: .scalar(scalar.string, quoted: scalar.style != .plain), position: mark)
        case .sequence(let sequence):
            self.init(shape: .sequence(sequence.map(RawValue.init)), position: mark)
        case .mapping:
            self.init(shape: .mapping, position: mark)
        default:
            // YAML aliases (Yams 6 keeps them as nodes): a config file has no use for them.
            self.init(shape: .scalar("*alias", quoted: true), position: mark)
        }
    }
}
