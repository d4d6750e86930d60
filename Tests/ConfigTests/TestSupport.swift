import Config
import Foundation

/// The error `ConfigLoader.parse` throws for the text, or nil when it parses.
func parseError(_ yaml: String, overrides: [String] = []) -> ConfigError? {
    do {
        _ = try ConfigLoader.parse(yaml: yaml, file: "node.yaml", overrides: overrides)
        return nil
    } catch {
        return error
    }
}

/// `parseError(...)?.description`.
func message(_ yaml: String, overrides: [String] = []) -> String? {
    parseError(yaml, overrides: overrides)?.description
}

/// The error `ConfigEditor.set` throws, or nil.
func setError(_ key: String, _ value: String, in text: String) -> ConfigError? {
    do {
        _ = try ConfigEditor.set(key, to: value, in: text, file: "node.yaml")
        return nil
    } catch {
        return error
    }
}

/// The repository's config/values.yaml, found from this file's real (symlink-resolved) location.
var valuesYAMLPath: String {
    URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("config/values.yaml").path
}

/// A valid value other than the default for each key (nil where only one value is allowed),
/// chosen so that all of them together pass the cross-key checks.
func nonDefaultValue(for key: ConfigKey) -> ConfigValue? {
    switch key.type {
    case .bool:
        if case let .bool(value) = key.defaultValue { return .bool(!value) }
    case let .int(range):
        if key.constraints.contains(.powerOfTwoMinusOne) { return .int(1) }
        return .int(key.defaultValue == .int(range.lowerBound) ? range.upperBound : range.lowerBound)
    case let .intChoice(values):
        return values.first { .int($0) != key.defaultValue }.map(ConfigValue.int)
    case .string:
        for constraint in key.constraints {
            switch constraint {
            case .absolutePath: return .string("/other/path")
            case .ipv4CIDROrEmpty: return .string("10.1.0.0/16")
            case .base64OrEmpty: return .string("AAECAwQFBgcICQoL")
            default: break
            }
        }
        return .string("other")
    case let .enumeration(values):
        let refused = key.constraints.compactMap { constraint -> String? in
            if case let .unavailable(value, _) = constraint { return value }
            return nil
        }
        return values.first { .string($0) != key.defaultValue && !refused.contains($0) }.map(ConfigValue.string)
    case .stringList:
        return .list(["one", "two"])
    case .cidrList:
        return .list(["10.1.0.0/16", "10.2.0.0/16"])
    }
    return nil
}
