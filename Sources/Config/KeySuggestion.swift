import Diagnostics
extension ConfigSchema {
    /// Why a dotted path given to `--set`, `config set` or `get` is not a setting.
    func notASettingProblem(_ path: String) -> String {
        if isSection(path) {
            let inside = keys(under: path).map(\.path).joined(separator: ", ")
            return "\"\(Suggestion.excerpt(path))\" is a section, not a setting; use one of its keys: \(inside)"
        }
        if let guess = nearestKey(to: path) {
            return "unknown key \"\(Suggestion.excerpt(path))\" (did you mean \"\(guess)\"?)"
        }
        let parts = path.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        for depth in stride(from: parts.count - 1, to: 0, by: -1) {
            let section = parts[..<depth].joined(separator: ".")
            if isSection(section) {
                return "unknown key \"\(Suggestion.excerpt(path))\"; \(section) has \(children(of: section).joined(separator: ", "))"
            }
        }
        return "unknown key \"\(Suggestion.excerpt(path))\"; top-level keys are \(children(of: "").joined(separator: ", "))"
    }

    /// Why a mapping key `name` found in the file under `section` ("" = top level) is not allowed.
    func unknownFileKeyProblem(name: String, section: String) -> String {
        let path = section.isEmpty ? name : section + "." + name
        if name.contains("."), key(path) != nil || isSection(path) {
            let parts = path.split(separator: ".")
            return "unknown key \"\(Suggestion.excerpt(path))\"; dotted names are not expanded in the file, "
                + "nest it as \(parts.map { "\($0):" }.joined(separator: " "))"
        }
        if let guess = nearest(to: name, among: children(of: section)) {
            let full = section.isEmpty ? guess : section + "." + guess
            return "unknown key \"\(Suggestion.excerpt(path))\" (did you mean \"\(full)\"?)"
        }
        if let guess = keyEnding(with: name) {
            return "unknown key \"\(Suggestion.excerpt(path))\" (did you mean \"\(guess)\"?)"
        }
        let known = children(of: section).joined(separator: ", ")
        return section.isEmpty
            ? "unknown key \"\(Suggestion.excerpt(path))\"; top-level keys are \(known)"
            : "unknown key \"\(Suggestion.excerpt(path))\"; \(section) has \(known)"
    }

    /// The setting or section path nearest to `path`, if any is close.
    func nearestKey(to path: String) -> String? {
        let sections = keys.flatMap { key in
            key.components.indices.dropLast().map { key.components[...$0].joined(separator: ".") }
        }
        return nearest(to: path, among: keys.map(\.path) + sections) ?? keyEnding(with: path)
    }

    /// The only setting whose last component is `name` (case-insensitively), e.g. a key written
    /// in the wrong section.
    private func keyEnding(with name: String) -> String? {
        let last = name.split(separator: ".").last.map { $0.lowercased() } ?? ""
        let matches = keys.filter { $0.components.last?.lowercased() == last }
        return matches.count == 1 ? matches[0].path : nil
    }

    /// The candidate closest to `name`, when the edit distance is small for its length.
    func nearest(to name: String, among candidates: [String]) -> String? {
        guard name.utf8.count <= Suggestion.longestName else { return nil }
        let lowered = name.lowercased()
        let limit = max(1, min(3, name.count / 3))
        var best: (candidate: String, distance: Int)?
        for candidate in candidates {
            guard abs(candidate.count - lowered.count) <= limit else { continue }
            let distance = Suggestion.editDistance(lowered, candidate.lowercased())
            if distance <= limit, distance < (best?.distance ?? .max) {
                best = (candidate, distance)
            }
        }
        return best?.candidate
    }
}
