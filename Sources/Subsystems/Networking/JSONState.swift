import Foundation

/// A small JSON file under the agent's state directory, written atomically
/// (temp + rename), so what the agent allocated survives its restart.
struct JSONState<Value: Codable> {
    let path: String

    func load() throws -> Value? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        do {
            return try JSONDecoder().decode(Value.self, from: data)
        } catch {
            throw StateFileError(path: path, reason: "\(error)")
        }
    }

    func save(_ value: Value) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try enc.encode(value).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

struct StateFileError: Error, CustomStringConvertible {
    var path: String
    var reason: String
    var description: String { "state file \(path) is unreadable (\(reason)); move it away to start from empty state" }
}
