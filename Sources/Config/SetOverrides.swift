/// One `KEY=VALUE` from a Helm-style `--set` (or `cilium config set`).
struct SetAssignment {
    /// The `KEY=VALUE` text as written, for error messages.
    var text: String
    var key: String
    var value: RawValue
}

/// Helm's `--set` syntax: `a.b=v`, several joined by commas (`a=1,b=2`), lists as `{x,y}`,
/// `\,` for a literal comma, `KEY=null` to fall back to the default.
enum HelmSet {
    static func parse(_ text: String, origin: (String) -> ConfigError.Origin) throws(ConfigError) -> [SetAssignment] {
        var result: [SetAssignment] = []
        var rest = Substring(text)
        while true {
            let (piece, remainder) = try nextAssignment(rest, origin: origin)
            guard let equals = piece.firstIndex(of: "=") else {
                throw ConfigError(origin: origin(String(piece)),
                                  problem: "expected KEY=VALUE, e.g. hubble.enabled=false")
            }
            let key = String(piece[..<equals])
            let valueText = piece[piece.index(after: equals)...]
            if key.isEmpty {
                throw ConfigError(origin: origin(String(piece)), problem: "missing key; write KEY=VALUE")
            }
            if key.contains("[") {
                throw ConfigError(origin: origin(String(piece)),
                                  problem: "list indexes are not supported; set the whole list as KEY={a,b}")
            }
            result.append(SetAssignment(text: String(piece), key: key,
                                        value: try parseValue(valueText, origin: origin(String(piece)))))
            guard let remainder else { return result }
            rest = remainder
        }
    }

    /// Splits off the first assignment at an unescaped comma outside braces.
    private static func nextAssignment(
        _ text: Substring, origin: (String) -> ConfigError.Origin
    ) throws(ConfigError) -> (Substring, Substring?) {
        var inBraces = false
        var index = text.startIndex
        while index < text.endIndex {
            switch text[index] {
            case "\\":
                index = text.index(after: index)
                if index == text.endIndex { continue }
            case "{": inBraces = true
            case "}": inBraces = false
            case "," where !inBraces:
                return (text[..<index], text[text.index(after: index)...])
            default: break
            }
            index = text.index(after: index)
        }
        if inBraces {
            throw ConfigError(origin: origin(String(text)), problem: "unclosed \"{\"; write lists as {a,b}")
        }
        return (text, nil)
    }

    /// `{a,b}` is a list (items trimmed, `{}` empty); anything else is an unquoted scalar, except
    /// that an empty value is the empty string rather than null.
    static func parseValue(_ text: Substring, origin: ConfigError.Origin) throws(ConfigError) -> RawValue {
        if text.hasPrefix("{") {
            guard text.hasSuffix("}"), text.count >= 2 else {
                throw ConfigError(origin: origin, problem: "a list must end with \"}\"; write lists as {a,b}")
            }
            let inner = text.dropFirst().dropLast()
            if inner.trimmingSpaces.isEmpty { return RawValue(shape: .sequence([]), position: nil) }
            let items = splitUnescaped(inner).map {
                RawValue(shape: .scalar($0.trimmingSpaces, quoted: true), position: nil)
            }
            return RawValue(shape: .sequence(items), position: nil)
        }
        let scalar = unescape(text)
        return RawValue(shape: .scalar(scalar, quoted: scalar.isEmpty), position: nil)
    }

    private static func splitUnescaped(_ text: Substring) -> [String] {
        var parts: [String] = []
        var current = ""
        var escaped = false
        for character in text {
            if escaped {
                current.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == "," {
                parts.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        parts.append(current)
        return parts
    }

    private static func unescape(_ text: Substring) -> String {
        splitUnescaped(text).joined(separator: ",")
    }
}

extension StringProtocol {
    var trimmingSpaces: String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
