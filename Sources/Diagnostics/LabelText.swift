/// Kubernetes' rules for label keys and values (and Cilium's `source:` prefix on keys), so that
/// every reader of labels (policy selectors, pod labels from the CNI) refuses the same things:
/// a NUL byte, a megabyte, `$(id)`.
public enum LabelText {
    /// Why `key` is not a label key, or nil. `[source:][prefix/]name`: the source is lowercase
    /// letters and digits (k8s, any, reserved, ...); the prefix a DNS subdomain of at most 253
    /// characters; the name 1-63 characters, alphanumeric at both ends, `-`, `_` and `.` inside.
    public static func keyProblem(_ key: String) -> String? {
        var rest = Substring(key)
        if let colon = rest.firstIndex(of: ":"), !rest[..<colon].contains("/") {
            let source = rest[..<colon]
            guard !source.isEmpty, source.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) }) else {
                return "the source before ':' must be lowercase letters and digits (k8s, any, reserved)"
            }
            rest = rest[rest.index(after: colon)...]
        }
        var name = rest
        if let slash = rest.lastIndex(of: "/") {
            let prefix = rest[..<slash]
            name = rest[rest.index(after: slash)...]
            guard isSubdomain(prefix) else {
                return "the prefix before '/' must be a DNS subdomain: lowercase letters, digits, '-' and '.', at most 253 characters"
            }
        }
        guard !name.isEmpty else { return "the name cannot be empty" }
        return nameProblem(name)
    }

    /// Why `value` is not a label value, or nil: empty, or 1-63 characters as a key's name.
    public static func valueProblem(_ value: String) -> String? {
        value.isEmpty ? nil : nameProblem(Substring(value))
    }

    private static func nameProblem(_ name: Substring) -> String? {
        guard name.utf8.count <= 63 else { return "it is \(name.utf8.count) characters long; at most 63 are allowed" }
        let u = Array(name.utf8)
        func alphanumeric(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) }
        guard u.allSatisfy({ alphanumeric($0) || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E }) else {
            return "only letters, digits, '-', '_' and '.' are allowed"
        }
        guard alphanumeric(u[0]), alphanumeric(u[u.count - 1]) else { return "it must begin and end with a letter or digit" }
        return nil
    }

    private static func isSubdomain(_ s: Substring) -> Bool {
        guard !s.isEmpty, s.utf8.count <= 253 else { return false }
        return s.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            let u = Array(label.utf8)
            func ok(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7A) }
            return !u.isEmpty && u.count <= 63 && ok(u[0]) && ok(u[u.count - 1]) && u.allSatisfy { ok($0) || $0 == 0x2D }
        }
    }
}

/// Container port names (Kubernetes' IANA_SVC_NAME): 1-15 lowercase letters, digits and '-', with at least one
/// letter, no '-' at either end and no "--". Policies may name a port by it.
public enum NamedPortText {
    public static func isValid(_ s: String) -> Bool {
        (1...15).contains(s.count) && s.allSatisfy { ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "-" }
            && s.contains(where: \.isLetter) && s.first != "-" && s.last != "-" && !s.contains("--")
    }
}
