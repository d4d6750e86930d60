import API
import Foundation

/// A small JSON file under the agent's state directory, written atomically
/// (temp + rename), so what the agent allocated or was given survives its
/// restart. Shared by the subsystems (endpoints, IPAM, identities, policies, services).
public struct JSONState<Value: Codable>: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    public func load() throws -> Value? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        do {
            return try JSONDecoder().decode(Value.self, from: data)
        } catch {
            throw StateFileError(path: path, reason: "\(error)")
        }
    }

    public func save(_ value: Value) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try enc.encode(value).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

public struct StateFileError: Error, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "state file \(path) is unreadable (\(reason)); move it away to start from empty state" }
}
