import Foundation

/// The resource directory as a second way in: every `*.yaml`, `*.yml` or
/// `*.json` file there that holds CiliumNetworkPolicy or
/// CiliumClusterwideNetworkPolicy documents is imported; a file removed takes
/// its policies with it. Polled (cheap: names, sizes and times) every two
/// seconds. A file that does not parse changes nothing and shows in status.
actor PolicyDirectory {
    static let source = "directory"
    let path: String
    private let engine: PolicyEngine
    private var signature: [String] = []
    private var task: Task<Void, Never>?
    private(set) var lastError: String?

    init(path: String, engine: PolicyEngine) {
        self.path = path
        self.engine = engine
    }

    func start() async {
        await scan()
        task = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(2))
                await self?.scan()
            }
        }
    }

    func stop() {
        task?.cancel()
        task = nil
    }

    private func policyFiles() -> [(String, String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.sorted().filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") || $0.hasSuffix(".json") }.compactMap { name in
            let file = path + "/" + name
            guard let text = try? String(contentsOfFile: file, encoding: .utf8),
                  text.contains("CiliumNetworkPolicy") || text.contains("CiliumClusterwideNetworkPolicy") else { return nil }
            return (file, text)
        }
    }

    func scan() async {
        let files = policyFiles()
        let sig = files.map { "\($0.0)\u{0}\($0.1.hashValue)" }
        guard sig != signature else { return }
        var all: [Policy] = []
        for (file, text) in files {
            do {
                all += try PolicyParser.parse(text, file: file)
            } catch {
                lastError = "resource directory: \(error.description) (the policies in force stay as they were)"
                return
            }
        }
        signature = sig
        lastError = nil
        _ = await engine.apply(all, source: Self.source, replacingSource: true)
    }
}
