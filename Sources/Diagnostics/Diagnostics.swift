import Glibc

/// The text of an errno value, as strerror(3) gives it ("No such file or directory"), or in
/// Go's style with a lowercase first letter ("connection refused") where the message follows
/// upstream tools that print it that way (the etcd client's errors).
public func errnoText(_ code: Int32, lowercased: Bool = false) -> String {
    let text = String(cString: strerror(code))
    return lowercased ? text.prefix(1).lowercased() + text.dropFirst() : text
}

/// "Did you mean ...?" for names a user typed: config keys, manifest fields, enum values.
public enum Suggestion {
    /// Optimal string alignment distance: insertions, deletions, substitutions and adjacent swaps.
    public static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var table = Array(repeating: Array(repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { table[i][0] = i }
        for j in 0...b.count { table[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    table[i][j] = min(table[i][j], table[i - 2][j - 2] + 1)
                }
            }
        }
        return table[a.count][b.count]
    }

    /// Names longer than this get no suggestion: no candidate is that long, and the distance
    /// table grows with the square of the length (a 1 MB name took seconds).
    public static let longestName = 256

    /// `text` as an error message quotes it: whole when short, else its start and its length.
    public static func excerpt(_ text: String, limit: Int = 80) -> String {
        guard text.utf8.count > limit else { return text }
        return String(text.prefix(limit)) + "... (\(text.utf8.count) bytes)"
    }

    /// The candidate closest to `name` (ignoring case), if close enough to be a typo: an exact
    /// match, or within 1 edit (2 for names of 8 characters or more).
    public static func closest(to name: String, among candidates: [String]) -> String? {
        guard name.utf8.count <= longestName else { return nil }
        let typed = name.lowercased()
        var best: (candidate: String, distance: Int)?
        for candidate in candidates {
            let tolerance = min(2, max(1, candidate.count / 4))
            // The distance is at least the difference in length.
            guard abs(candidate.count - typed.count) <= tolerance || candidate.lowercased() == typed else { continue }
            let distance = editDistance(typed, candidate.lowercased())
            if distance == 0 { return candidate }
            if distance <= tolerance, distance < (best?.distance ?? .max) {
                best = (candidate, distance)
            }
        }
        return best?.candidate
    }
}
