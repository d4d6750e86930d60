import Foundation

/// Service and EndpointSlice manifests in the resource directory (the same
/// directory as pods and policies): every `*.yaml`, `*.yml` or `*.json` file
/// that holds `kind: Service` or `kind: EndpointSlice`. Polled every two
/// seconds; a file that does not parse changes nothing and shows in status.
actor ServiceDirectory {
    static let source = "directory"
    let path: String
    private weak var owner: LoadBalancerSubsystem?
    private var signature: [String] = []
    private var task: Task<Void, Never>?
    private(set) var lastError: String?

    init(path: String, owner: LoadBalancerSubsystem) {
        self.path = path
        self.owner = owner
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

    func scan() async {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
        let files: [(String, String)] = names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") || $0.hasSuffix(".json") }.compactMap { n in
            let file = path + "/" + n
            guard let text = try? String(contentsOfFile: file, encoding: .utf8),
                  text.range(of: #"kind:\s*"?(Service|EndpointSlice)\b"#, options: .regularExpression) != nil else { return nil }
            return (file, text)
        }
        let sig = files.map { "\($0.0)\u{0}\($0.1.hashValue)" }
        guard sig != signature else { return }
        var all = ServiceDocuments()
        for (file, text) in files {
            do {
                let docs = try ServiceManifestParser.parse(text, file: file)
                all.services += docs.services
                all.slices += docs.slices
            } catch {
                lastError = "resource directory: \(error.description) (the services in force stay as they were)"
                return
            }
        }
        do {
            try await owner?.apply(all, source: Self.source, replacingSource: true)
            signature = sig
            lastError = nil
        } catch {
            lastError = "resource directory: \(error.description)"
        }
    }
}
