import API
import Diagnostics
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
        var files: [File] = []
        for name in names where name.hasSuffix(".yaml") || name.hasSuffix(".yml") || name.hasSuffix(".json") {
            let file = path + "/" + name
            guard let data = FileManager.default.contents(atPath: file) else { continue }
            switch UTF8Text.decode(data, file: file) {
            case .success(let text): if wants(text) { files.append((file, text)) }
            case .failure(let error):
                // Not skipped silently: what is in force stays, and status says which file and where.
                lastError = "resource directory: \(error) (the resources in force stay as they were)"
                return
            }
        }
        let sig = files.map { "\($0.path)\u{0}\($0.text.hashValue)" }
        guard sig != signature else {
            lastError = nil // what is in force is what the directory holds (a refused file is gone)
            return
        }
        if let error = await apply(files) {
            lastError = "resource directory: \(error)"
        } else {
            signature = sig
            lastError = nil
        }
    }
}
