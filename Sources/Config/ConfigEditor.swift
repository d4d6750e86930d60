import Yams

/// Edits the node's config file for `cilium config set/get/view`.
///
/// `set` keeps the user's other keys and values. When the key already holds a one-line value, or
/// is missing, the text is edited in place so comments survive; otherwise the document is
/// re-emitted from the YAML tree and comments are lost. The result is always re-validated.
public enum ConfigEditor {
    /// Sets `key` to `value` (Helm `--set` syntax: `true`, `42`, `text`, `{a,b}`; `null` removes
    /// the key so the default applies) in the YAML `text` and returns the new text.
    public static func set(_ key: String, to value: String, in text: String,
                           file: String = "values.yaml") throws(ConfigError) -> String {
        let assignmentText = "\(key)=\(value)"
        let raw = try HelmSet.parseValue(Substring(value), origin: .setting(assignmentText))
        let assignment = SetAssignment(text: assignmentText, key: key, value: raw)
        let newValue = try ConfigLoader.validate(assignment, origin: .setting(assignmentText))
        guard let schemaKey = schema.key(key) else {
            throw ConfigError(origin: .setting(assignmentText), problem: schema.notASettingProblem(key))
        }
        let tree = try ConfigLoader.compose(text, file: file)
        let newNode = newValue.map { node(for: $0, of: schemaKey) }
        let expected = try setting(newNode, at: schemaKey.components, in: tree, file: file)
        let newText = editedInPlace(text, tree: tree, key: schemaKey, value: newValue, expected: expected, file: file)
            ?? emit(expected)
        try revalidate(newText, original: text, file: file, key: key, assignmentText: assignmentText)
        // A file ends with a newline, so later appends and `cat` stay tidy.
        return newText.isEmpty || newText.hasSuffix("\n") ? newText : newText + "\n"
    }

    /// `set` taking `KEY=VALUE` text as `cilium config set` receives it.
    public static func set(_ assignment: String, in text: String,
                           file: String = "values.yaml") throws(ConfigError) -> String {
        guard let equals = assignment.firstIndex(of: "="), equals != assignment.startIndex else {
            throw ConfigError(origin: .setting(assignment), problem: "expected KEY=VALUE, e.g. hubble.enabled=false")
        }
        return try set(String(assignment[..<equals]), to: String(assignment[assignment.index(after: equals)...]),
                       in: text, file: file)
    }

    /// Removes `key` from the text so its default applies.
    public static func unset(_ key: String, in text: String,
                             file: String = "values.yaml") throws(ConfigError) -> String {
        try set(key, to: "null", in: text, file: file)
    }

    /// The effective value of `key` in the text (defaults included), as `--set` text.
    public static func get(_ key: String, in text: String, file: String = "values.yaml") throws(ConfigError) -> String {
        try ConfigLoader.parse(yaml: text, file: file).get(key)
    }

    /// Every effective `key=value` of the text, in schema order.
    public static func flattened(_ text: String, file: String = "values.yaml") throws(ConfigError) -> [ConfigSetting] {
        try ConfigLoader.parse(yaml: text, file: file).flattened()
    }

    /// Full validation of the edited text. Problems the edit caused are reported against the
    /// `KEY=VALUE`; problems the file already had keep their place in the original file.
    private static func revalidate(_ newText: String, original: String, file: String, key: String,
                                   assignmentText: String) throws(ConfigError) {
        do {
            _ = try ConfigLoader.parse(yaml: newText, file: file)
        } catch {
            if error.key != key {
                do {
                    _ = try ConfigLoader.parse(yaml: original, file: file)
                } catch let before where before.key == error.key && before.problem == error.problem {
                    throw before
                } catch {}
            }
            throw ConfigError(origin: .setting(assignmentText), key: error.key, problem: error.problem)
        }
    }

    /// The node written for a value: enumerations plain, other strings double-quoted, lists in flow style.
    static func node(for value: ConfigValue, of key: ConfigKey) -> Node {
        switch value {
        case .bool, .int:
            return .scalar(Node.Scalar(value.description, .implicit, .plain))
        case let .string(text):
            if case .enumeration = key.type { return .scalar(Node.Scalar(text, .implicit, .plain)) }
            return .scalar(Node.Scalar(text, .implicit, .doubleQuoted))
        case let .list(items):
            return .sequence(Node.Sequence(items.map { .scalar(Node.Scalar($0, .implicit, .doubleQuoted)) },
                                           .implicit, .flow))
        }
    }

    /// The text form of `node(for:of:)`.
    static func text(for value: ConfigValue, of key: ConfigKey) -> String {
        if case let .string(text) = value, case .enumeration = key.type { return text }
        return value.yamlText
    }

    /// The tree with the leaf at `path` set to `value` (nil removes it), creating mappings on the way.
    private static func setting(_ value: Node?, at path: [String], in tree: Node?, file: String,
                                done: [String] = []) throws(ConfigError) -> Node {
        var mapping: Node.Mapping
        switch tree {
        case .mapping(let existing)?:
            mapping = existing
        case nil:
            mapping = Node.Mapping([], .implicit, .block)
        case let node? where RawValue(node).isNull:
            mapping = Node.Mapping([], .implicit, .block)
        case let node?:
            let section = done.joined(separator: ".")
            throw ConfigError(origin: ConfigLoader.origin(of: node, in: file), key: section.isEmpty ? nil : section,
                              problem: "expected a mapping, got \(RawValue(node).got); fix the file first")
        }
        let name = path[0]
        var pairs = Array(mapping)
        let index = pairs.firstIndex { $0.key.string == name }
        if path.count == 1 {
            switch (index, value) {
            case let (index?, value?): pairs[index].value = value
            case let (index?, nil): pairs.remove(at: index)
            case let (nil, value?): pairs.append((Node(name, .implicit, .plain), value))
            case (nil, nil): break
            }
        } else if let index {
            pairs[index].value = try setting(value, at: Array(path.dropFirst()), in: pairs[index].value,
                                             file: file, done: done + [name])
        } else if value != nil {
            pairs.append((Node(name, .implicit, .plain), try setting(value, at: Array(path.dropFirst()), in: nil,
                                                  file: file, done: done + [name])))
        }
        return .mapping(Node.Mapping(pairs.map { ($0.key, $0.value) }, mapping.tag, mapping.style, mapping.mark))
    }

    private static func emit(_ tree: Node) -> String {
        if case let .mapping(mapping) = tree, mapping.isEmpty { return "" }
        return (try? Yams.serialize(node: tree, indent: 2, width: -1, allowUnicode: true)) ?? ""
    }
}
