import API
import Foundation

/// The resource directory as a way in for manifests (policies, services):
/// every `*.yaml`, `*.yml` or `*.json` file whose text `wants` is handed, all
/// together, to `apply` whenever one of them changes (polled every two
/// seconds: names and contents). `apply` returns nil when it took them, or
/// what is wrong, in which case nothing changed and the next change retries.
public actor ResourceDirectory {
    public typealias File = (path: String, text: String)
    public nonisolated let path: String
    private let wants: @Sendable (String) -> Bool
    private let apply: @Sendable ([File]) async -> String?
    private var signature: [String]?
    private var task: Task<Void, Never>?
    public private(set) var lastError: String?

    public init(path: String, wants: @escaping @Sendable (String) -> Bool, apply: @escaping @Sendable ([File]) async -> String?) {
        self.path = path
        self.wants = wants
        self.apply = apply
    }

    public func start() async {
        await scan()
        task = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(2))
                await self?.scan()
            }
        }
    }

    public func stop() {
        task?.cancel()
        task = nil
    }

    public func scan() async {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
        let files: [File] = names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") || $0.hasSuffix(".json") }.compactMap { name in
            let file = path + "/" + name
            guard let text = try? String(contentsOfFile: file, encoding: .utf8), wants(text) else { return nil }
            return (file, text)
        }
        let sig = files.map { "\($0.path)\u{0}\($0.text.hashValue)" }
        guard sig != signature else { return }
        if let error = await apply(files) {
            lastError = "resource directory: \(error)"
        } else {
            signature = sig
            lastError = nil
        }
    }
}
