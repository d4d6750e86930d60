import Config

/// A valid value other than the default for each key (nil where only one value is allowed),
/// chosen so that all of them together pass the cross-key checks.
public func nonDefaultValue(for key: ConfigKey) -> ConfigValue? {
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
            case .duration, .durationOrZero: return .string("90s")
            case .absolutePathOrEmpty: return .string("/other/path")
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

/// A value other than the default for each key that has one, refused enumeration values
/// included (for comparing configurations, not loading them).
public func anyOtherValue(for key: ConfigKey) -> ConfigValue? {
    if let value = nonDefaultValue(for: key) { return value }
    if case let .enumeration(values) = key.type {
        return values.first { .string($0) != key.defaultValue }.map(ConfigValue.string)
    }
    return nil
}
