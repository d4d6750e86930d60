import Yams

/// In-place text edits that keep comments and layout. Each result is checked by re-parsing it and
/// comparing with the tree edit; nil means "could not do it safely, re-emit the tree instead".
extension ConfigEditor {
    static func editedInPlace(_ text: String, tree: Node?, key: ConfigKey, value: ConfigValue?,
                              expected: Node, file: String) -> String? {
        guard !text.contains("\r") else { return nil }
        var lines = text.components(separatedBy: "\n")
        let edited: Bool
        if let (keyNode, valueNode) = leaf(at: key.components, in: tree, lines: lines) {
            edited = replace(keyNode: keyNode, valueNode: valueNode, with: value.map { self.text(for: $0, of: key) },
                             in: &lines)
        } else if let value {
            edited = insert(key.components, value: self.text(for: value, of: key), into: tree, lines: &lines)
        } else {
            return text  // removing a key that is not there
        }
        guard edited else { return nil }
        let result = lines.joined(separator: "\n")
        guard let composed = try? ConfigLoader.compose(result, file: file),
              canonical(composed) == canonical(expected) else { return nil }
        return result
    }

    /// The key and value nodes at a path, when every mapping on the way is in block style.
    private static func leaf(at path: [String], in tree: Node?, lines: [String]) -> (Node, Node)? {
        guard let tree, case let .mapping(mapping) = tree, !isFlow(tree, lines),
              let pair = mapping.first(where: { $0.key.string == path[0] }) else { return nil }
        if path.count == 1 { return (pair.key, pair.value) }
        return leaf(at: Array(path.dropFirst()), in: pair.value, lines: lines)
    }

    /// Whether a collection is written in flow style (`{...}` or `[...]`). Yams does not report
    /// collection styles when composing, so this looks at the text at the node's position.
    private static func isFlow(_ node: Node, _ lines: [String]) -> Bool {
        guard let mark = node.mark, lines.indices.contains(mark.line - 1) else { return false }
        let line = Array(lines[mark.line - 1].unicodeScalars)
        return line.indices.contains(mark.column - 1) && ["{", "["].contains(line[mark.column - 1])
    }

    /// Replaces a one-line value after its key (or deletes the key's line when `replacement` is nil).
    private static func replace(keyNode: Node, valueNode: Node, with replacement: String?,
                                in lines: inout [String]) -> Bool {
        if RawValue(valueNode).isNull {
            return replaceNull(keyNode: keyNode, with: replacement, in: &lines)
        }
        if case let .sequence(items) = valueNode, let first = valueNode.mark?.line, let keyLine = keyNode.mark?.line,
           first > keyLine, let last = items.last?.mark?.line, last >= first, lines.count >= last {
            // A block list under its key: drop the item lines, then write the value after the key.
            var edited = lines
            edited.removeSubrange((first - 1)..<last)
            guard replaceNull(keyNode: keyNode, with: replacement, in: &edited) else { return false }
            lines = edited
            return true
        }
        guard let keyMark = keyNode.mark, let mark = valueNode.mark, mark.line == keyMark.line,
              lines.indices.contains(mark.line - 1) else { return false }
        let line = Array(lines[mark.line - 1].unicodeScalars)
        let start = mark.column - 1
        guard line.indices.contains(start), let end = valueEnd(line, from: start, node: valueNode) else { return false }
        guard let replacement else {
            let rest = String(String.UnicodeScalarView(line[end...])).trimmingSpaces
            guard rest.isEmpty || rest.hasPrefix("#") else { return false }
            lines.remove(at: mark.line - 1)
            return true
        }
        var scalars = String.UnicodeScalarView(line[..<start])
        scalars.append(contentsOf: replacement.unicodeScalars)
        scalars.append(contentsOf: line[end...])
        lines[mark.line - 1] = String(scalars)
        return true
    }

    /// Fills in (or deletes) a key written with no value: `key:` or `key: # comment`.
    private static func replaceNull(keyNode: Node, with replacement: String?, in lines: inout [String]) -> Bool {
        guard case let .scalar(key) = keyNode, key.style == .plain, let keyMark = keyNode.mark,
              lines.indices.contains(keyMark.line - 1) else { return false }
        let line = Array(lines[keyMark.line - 1].unicodeScalars)
        var colon = keyMark.column - 1 + key.string.unicodeScalars.count
        while colon < line.count, line[colon] == " " { colon += 1 }
        guard colon < line.count, line[colon] == ":" else { return false }
        let rest = String(String.UnicodeScalarView(line[(colon + 1)...])).trimmingSpaces
        guard rest.isEmpty || rest.hasPrefix("#") else { return false }
        guard let replacement else {
            lines.remove(at: keyMark.line - 1)
            return true
        }
        let head = String(String.UnicodeScalarView(line[...colon]))
        lines[keyMark.line - 1] = head + " " + replacement + (rest.isEmpty ? "" : " " + rest)
        return true
    }

    /// Index just past a single-line scalar or flow sequence starting at `start`, if it ends on this line.
    private static func valueEnd(_ line: [Unicode.Scalar], from start: Int, node: Node) -> Int? {
        switch node {
        case .scalar(let scalar) where scalar.style == .plain:
            var end = line.count
            for index in start..<line.count where line[index] == "#" && index > start
                && (line[index - 1] == " " || line[index - 1] == "\t") {
                end = index
                break
            }
            while end > start, line[end - 1] == " " || line[end - 1] == "\t" { end -= 1 }
            return end
        case .scalar(let scalar) where scalar.style == .doubleQuoted || scalar.style == .singleQuoted:
            return quotedEnd(line, from: start)
        case .sequence where line[start] == "[":
            var depth = 0
            var index = start
            while index < line.count {
                switch line[index] {
                case "\"", "'":
                    guard let end = quotedEnd(line, from: index) else { return nil }
                    index = end
                    continue
                case "[": depth += 1
                case "]":
                    depth -= 1
                    if depth == 0 { return index + 1 }
                default: break
                }
                index += 1
            }
            return nil
        default:
            return nil
        }
    }

    /// Index just past the closing quote of the quoted scalar starting at `start`.
    private static func quotedEnd(_ line: [Unicode.Scalar], from start: Int) -> Int? {
        let quote = line[start]
        var index = start + 1
        while index < line.count {
            if quote == "\"" && line[index] == "\\" {
                index += 2
                continue
            }
            if line[index] == quote {
                if quote == "'" && index + 1 < line.count && line[index + 1] == "'" {
                    index += 2
                    continue
                }
                return index + 1
            }
            index += 1
        }
        return nil
    }

    /// Adds `path: value` (with the missing sections) at the end of the deepest existing section.
    private static func insert(_ path: [String], value: String, into tree: Node?, lines: inout [String]) -> Bool {
        var mapping: Node.Mapping?
        if let tree, case let .mapping(root) = tree, !isFlow(tree, lines) {
            mapping = root
        } else if tree != nil {
            return false
        }
        var indent = 0
        var depth = 0
        // After the loop: `mapping` is the deepest existing section (nil: empty document) and
        // `indent` its children's indentation; `end` the line index to insert before.
        var end = lines.count
        while let current = mapping {
            if let column = current.first?.key.mark?.column { indent = column - 1 }
            guard let index = current.firstIndex(where: { $0.key.string == path[depth] }) else { break }
            let pair = current[index]
            if depth + 1 < path.count, RawValue(pair.value).isNull, let keyMark = pair.key.mark {
                // An empty section (`hubble:`): its children go right under it.
                end = keyMark.line
                indent = keyMark.column - 1 + 2
                depth += 1
                mapping = nil
                break
            }
            guard case let .mapping(inner) = pair.value, depth + 1 < path.count, !isFlow(pair.value, lines),
                  !inner.isEmpty else { return false }
            // The section's lines end where its next sibling's key (and that key's comments) begin.
            let nextIndex = current.index(after: index)
            if nextIndex < current.endIndex, let line = current[nextIndex].key.mark?.line {
                end = line - 1
                while end > 0, lines[end - 1].trimmingSpaces.hasPrefix("#") { end -= 1 }
            }
            mapping = inner
            depth += 1
        }
        // Keep trailing blank lines after the insertion.
        while end > 0, lines[end - 1].trimmingSpaces.isEmpty { end -= 1 }
        var added: [String] = []
        for (offset, name) in path[depth...].enumerated() {
            let pad = String(repeating: " ", count: indent + 2 * offset)
            added.append(depth + offset == path.count - 1 ? "\(pad)\(name): \(value)" : "\(pad)\(name):")
        }
        lines.insert(contentsOf: added, at: end)
        return true
    }

    /// A comparable rendering of a tree: values and quoting, not positions. An empty mapping and
    /// null read the same (removing a section's last key may leave either).
    static func canonical(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar):
            if RawValue(node).isNull { return "{}" }
            return (scalar.style == .plain ? "P" : "Q") + yamlQuoted(scalar.string)
        case .sequence(let sequence):
            return "[" + sequence.map(canonical).joined(separator: ",") + "]"
        case .mapping(let mapping):
            return "{" + mapping.map { canonical($0.key) + ":" + canonical($0.value) }.joined(separator: ",") + "}"
        default:
            return "A"
        }
    }
}
