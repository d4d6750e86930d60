import Foundation

/// Container labels from podman, for endpoints whose CNI ADD carried none.
///
/// Podman 4.3 passes neither `args.cni.labels` nor anything else with the container's labels to a
/// CNI plugin (CNI_ARGS is "IgnoreUnknown=1;K8S_POD_NAME=<container name>"), and at ADD time the
/// container's OCI config.json is not written yet. Its labels are only in podman's database, and
/// podman holds the container's lock while ADD runs, so the agent asks `podman container inspect`
/// afterwards, in the background: the call waits for the lock and answers once podman has finished
/// the network setup. The CNI call itself never waits for podman.
enum PodmanLabels {
    enum Answer: Equatable {
        /// The container's labels ("key=value"), possibly none.
        case labels([String])
        /// Podman does not know the container (not a podman container) or podman is not installed.
        case notPodman
        /// Podman failed or timed out: ask again later.
        case retry(String)
    }

    /// Whether an endpoint's labels should be looked up: it has none and it is not a Kubernetes pod
    /// (runtimes that serve Kubernetes pass K8S_POD_NAMESPACE; podman passes only K8S_POD_NAME).
    static func wanted(labels: [String], podNamespace: String?) -> Bool {
        labels.isEmpty && (podNamespace ?? "").isEmpty
    }

    /// Labels as the endpoint carries them: source "container", as upstream for container-runtime labels.
    static func endpointLabels(_ podman: [String: String]) -> [String] {
        podman.map { "container:\($0.key)=\($0.value)" }.sorted()
    }

    /// Parses `podman container inspect --format '{{json .Config.Labels}}'` ("null" when none).
    static func parse(_ output: String) -> [String: String]? {
        let text = output.trimmingCharacters(in: .whitespacesAndNewlines)
        if text == "null" || text.isEmpty { return [:] }
        return try? JSONDecoder().decode([String: String].self, from: Data(text.utf8))
    }

    static let executable: String? = {
        let path = ProcessInfo.processInfo.environment["PATH"].flatMap { $0.isEmpty ? nil : $0 }
            ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        return path.split(separator: ":").map { "\($0)/podman" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    /// One `podman container inspect`, at most `timeout` seconds (it may wait for podman's lock).
    static func lookup(containerID: String, timeout: Int = 20) async -> Answer {
        guard let podman = executable else { return .notPodman }
        let argv = ["timeout", "-k", "2", String(timeout), podman, "container", "inspect",
                    "--format", "{{json .Config.Labels}}", containerID]
        let (status, out, err) = await run(argv)
        if status == 0, let labels = parse(out) { return .labels(endpointLabels(labels)) }
        if err.lowercased().contains("no such container") || err.lowercased().contains("no such object") {
            return .notPodman
        }
        return .retry("podman container inspect exited with \(status): \(err.prefix(200))")
    }

    /// Runs a command off the cooperative pool; returns (status, stdout, stderr).
    private static func run(_ argv: [String]) async -> (Int32, String, String) {
        await withCheckedContinuation { (continuation: CheckedContinuation<(Int32, String, String), Never>) in
            DispatchQueue.global().async {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                p.arguments = argv
                let out = Pipe(), err = Pipe()
                p.standardOutput = out
                p.standardError = err
                p.standardInput = FileHandle.nullDevice
                do {
                    try p.run()
                } catch {
                    continuation.resume(returning: (127, "", "\(error)"))
                    return
                }
                // stderr is small; read it after stdout (podman writes one of them).
                let o = out.fileHandleForReading.readDataToEndOfFile()
                let e = err.fileHandleForReading.readDataToEndOfFile()
                p.waitUntilExit()
                continuation.resume(returning: (p.terminationStatus, String(decoding: o, as: UTF8.self),
                                                String(decoding: e, as: UTF8.self)))
            }
        }
    }

    /// Delays between attempts: quick at first (podman usually answers as soon as ADD returns), then
    /// slower; about two minutes in all.
    static let retryDelays: [Duration] = [.milliseconds(100), .milliseconds(300), .milliseconds(500), .seconds(1), .seconds(1),
                                          .seconds(2), .seconds(2), .seconds(5), .seconds(5), .seconds(10), .seconds(10),
                                          .seconds(20), .seconds(30), .seconds(30)]
}
