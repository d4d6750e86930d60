/// One validated setting value.
///
/// `description` renders it the way Helm's `--set` reads it back: `true`, `42`, `text`, `{a,b}`.
public enum ConfigValue: Sendable, Hashable, CustomStringConvertible {
    case bool(Bool)
    case int(Int)
    case string(String)
    case list([String])

    public var description: String {
        switch self {
        case let .bool(value): return value ? "true" : "false"
        case let .int(value): return String(value)
        case let .string(value): return value
        case let .list(items):
            let escaped = items.map { $0.replacingOccurrences(of: ",", with: "\\,") }
            return "{" + escaped.joined(separator: ",") + "}"
        }
    }

    /// The value as YAML flow text, as written in values.yaml (strings double-quoted).
    public var yamlText: String {
        switch self {
        case .bool, .int: return description
        case let .string(value): return yamlQuoted(value)
        case let .list(items): return "[" + items.map(yamlQuoted).joined(separator: ", ") + "]"
        }
    }
}

/// Double-quoted YAML scalar text.
func yamlQuoted(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7f {
                out += "\\x" + String(scalar.value, radix: 16).leftPadded(to: 2)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
