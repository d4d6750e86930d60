extension ConfigSchema {
    /// A values.yaml listing every key at its default, each under a `# -- doc Allowed: ...` comment,
    /// as Cilium's values.yaml documents its keys. Sections must be contiguous in `keys`.
    public func renderValuesYAML(header: [String] = []) -> String {
        var lines = header.map { $0.isEmpty ? "#" : "# \($0)" }
        var open: [String] = []
        for key in keys {
            let parts = key.components
            let sections = Array(parts.dropLast())
            var shared = 0
            while shared < min(open.count, sections.count), open[shared] == sections[shared] { shared += 1 }
            if shared == 0, !lines.isEmpty, lines.last != "" { lines.append("") }
            for depth in shared..<sections.count {
                lines.append(String(repeating: "  ", count: depth) + sections[depth] + ":")
            }
            open = sections
            let pad = String(repeating: "  ", count: sections.count)
            lines.append("\(pad)# -- \(key.doc) Allowed: \(key.allowed).")
            lines.append("\(pad)\(parts.last!): \(ConfigEditor.text(for: key.defaultValue, of: key))")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
