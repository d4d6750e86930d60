import Addressing
import Foundation

/// A 1-based line and column in the config file.
struct Position: Sendable, Equatable {
    var line: Int
    var column: Int
}

/// A value as written in the file or a `--set`, before validation.
struct RawValue {
    enum Shape {
        case scalar(String, quoted: Bool)
        case sequence([RawValue])
        case mapping
    }

    var shape: Shape
    var position: Position?

    /// Plain `~`, `null` or nothing: YAML's null, which means "use the default".
    var isNull: Bool {
        if case let .scalar(text, quoted: false) = shape { return ["", "~", "null", "Null", "NULL"].contains(text) }
        return false
    }

    /// How the value reads in an error: `"text"`, `a list` or `a mapping`.
    var got: String {
        switch shape {
        case let .scalar(text, quoted):
            return isNull && !quoted ? "null" : yamlQuoted(text)
        case .sequence: return "a list"
        case .mapping: return "a mapping"
        }
    }
}

/// Where a value was written, which decides how hints spell lists.
enum ValueSyntax {
    case yaml, helmSet
}

/// What is wrong with a value, and where (a list item's own position, when it is the culprit).
struct ValueProblem: Error {
    var problem: String
    var position: Position?
}

extension ConfigKey {
    /// Checks `raw` against this key's type and constraints. `raw` must not be null.
    func validate(_ raw: RawValue, syntax: ValueSyntax) throws(ValueProblem) -> ConfigValue {
        switch type {
        case .bool: return .bool(try validateBool(raw, syntax: syntax))
        case .int, .intChoice: return .int(try validateInt(raw, syntax: syntax))
        case .string: return .string(try validateString(raw))
        case .enumeration(let values): return .string(try validateChoice(raw, values))
        case .stringList, .cidrList: return .list(try validateList(raw, syntax: syntax))
        }
    }

    private func mismatch(_ raw: RawValue, hint: String = "") -> ValueProblem {
        ValueProblem(problem: "expected \(allowed), got \(raw.got)\(hint)", position: raw.position)
    }

    private func refuse(_ raw: RawValue, _ what: String) -> ValueProblem {
        ValueProblem(problem: "\(what) is not allowed; use \(allowed)", position: raw.position)
    }

    private static let quotedHint = " (a quoted string; write it without quotes)"

    private func validateBool(_ raw: RawValue, syntax: ValueSyntax) throws(ValueProblem) -> Bool {
        guard case let .scalar(text, quoted) = raw.shape else { throw mismatch(raw) }
        func boolean(_ text: String) -> Bool? {
            switch text {
            case "true", "True", "TRUE": return true
            case "false", "False", "FALSE": return false
            default: return nil
            }
        }
        if !quoted, let value = boolean(text) { return value }
        if constraints.contains(.helmStringBool) {
            if let value = boolean(text.lowercased()) { return value }
            if ["strict", "partial", "disabled"].contains(text.lowercased()) {
                throw ValueProblem(problem: "\(yamlQuoted(text)) was removed upstream (Cilium 1.15); use true or false",
                                   position: raw.position)
            }
        }
        if quoted, boolean(text) != nil { throw mismatch(raw, hint: Self.quotedHint) }
        throw mismatch(raw)
    }

    private func validateInt(_ raw: RawValue, syntax: ValueSyntax) throws(ValueProblem) -> Int {
        guard case let .scalar(text, quoted) = raw.shape, let value = Int(text) else { throw mismatch(raw) }
        if quoted && syntax == .yaml { throw mismatch(raw, hint: Self.quotedHint) }
        switch type {
        case let .int(range) where !range.contains(value):
            throw ValueProblem(problem: "\(value) is out of range; use \(allowed)", position: raw.position)
        case let .intChoice(values) where !values.contains(value):
            throw refuse(raw, String(value))
        default:
            break
        }
        if constraints.contains(.powerOfTwoMinusOne), (value + 1) & value != 0 {
            throw refuse(raw, String(value))
        }
        return value
    }

    private func validateString(_ raw: RawValue) throws(ValueProblem) -> String {
        guard case let .scalar(text, _) = raw.shape else { throw mismatch(raw) }
        for constraint in constraints {
            switch constraint {
            case let .dnsLabel(maxLength) where !isDNSLabel(text, maxLength: maxLength):
                throw refuse(raw, yamlQuoted(text))
            case .absolutePath where !text.hasPrefix("/"):
                throw refuse(raw, yamlQuoted(text))
            case .duration where (GoDuration.seconds(text) ?? 0) < 1:
                throw refuse(raw, yamlQuoted(text))
            case .durationOrZero where GoDuration.seconds(text) == nil:
                throw refuse(raw, yamlQuoted(text))
            case .absolutePathOrEmpty where !text.isEmpty && !text.hasPrefix("/"):
                throw refuse(raw, yamlQuoted(text))
            case .ipv4CIDROrEmpty where !text.isEmpty:
                if let problem = IPv4CIDR.problem(with: text) {
                    throw ValueProblem(problem: problem + " or \"\" for none", position: raw.position)
                }
            case let .base64OrEmpty(bytes) where !text.isEmpty && Data(base64Encoded: text)?.count != bytes:
                throw refuse(raw, yamlQuoted(text))
            default:
                break
            }
        }
        return text
    }

    private func validateChoice(_ raw: RawValue, _ values: [String]) throws(ValueProblem) -> String {
        guard case let .scalar(text, _) = raw.shape else { throw mismatch(raw) }
        if let refused = unavailableValues.first(where: { $0.value == text }) {
            throw ValueProblem(problem: "\(text) is \(refused.why); use \(oneOf(availableChoices))",
                               position: raw.position)
        }
        guard values.contains(text) else { throw refuse(raw, yamlQuoted(text)) }
        return text
    }

    private func validateList(_ raw: RawValue, syntax: ValueSyntax) throws(ValueProblem) -> [String] {
        guard case let .sequence(items) = raw.shape else {
            var hint = ""
            if case let .scalar(text, _) = raw.shape, !raw.isNull {
                hint = syntax == .yaml ? "; write [\(text)]" : "; write {\(text)}"
            }
            throw mismatch(raw, hint: hint)
        }
        var seen = Set<String>()
        var result: [String] = []
        for item in items {
            guard case let .scalar(text, _) = item.shape, !item.isNull, !text.isEmpty else {
                throw ValueProblem(problem: "expected \(allowed), got \(item.got) as a list item",
                                   position: item.position)
            }
            if type == .cidrList, let problem = IPv4CIDR.problem(with: text) {
                throw ValueProblem(problem: problem, position: item.position)
            }
            guard seen.insert(text).inserted else {
                throw ValueProblem(problem: "\(yamlQuoted(text)) is listed twice; list each item once",
                                   position: item.position)
            }
            result.append(text)
        }
        return result
    }
}

/// RFC 1123 label, lowercase.
func isDNSLabel(_ text: String, maxLength: Int) -> Bool {
    let bytes = Array(text.utf8)
    guard !bytes.isEmpty, bytes.count <= maxLength else { return false }
    func alphanumeric(_ byte: UInt8) -> Bool { (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x30 && byte <= 0x39) }
    guard alphanumeric(bytes.first!), alphanumeric(bytes.last!) else { return false }
    return bytes.allSatisfy { alphanumeric($0) || $0 == 0x2d }
}

/// An IPv4 CIDR such as 10.0.0.0/8, read by the project's one IPv4 parser (`IPv4Text`).
enum IPv4CIDR {
    /// Why `text` is not a usable CIDR, or nil when it is.
    static func problem(with text: String) -> String? {
        switch IPv4Text.prefix(text) {
        case .success: return nil
        case .failure(.hostBits(let network)): return "\(yamlQuoted(text)) has host bits set; use \(network)"
        case .failure: return "\(yamlQuoted(text)) is not an IPv4 CIDR; use ADDRESS/PREFIX like 10.0.0.0/8"
        }
    }
}
