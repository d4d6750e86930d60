import Foundation
import Yams

/// Pods' labels from the Kubernetes manifests in the resource directory: how
/// a runtime that passes K8S_POD_NAMESPACE/K8S_POD_NAME (and no labels) gets
/// its endpoints an identity.
public enum PodManifests {
    /// The labels of pod `namespace/name` as identity labels ("k8s:app=web"
    /// plus "k8s:io.kubernetes.pod.namespace=NS", as upstream), or nil when no
    /// manifest in `directory` (*.yaml, *.yml, *.json; several documents per
    /// file) describes that pod.
    public static func labels(namespace: String, name: String, in directory: String) -> [String]? {
        guard !directory.isEmpty, let files = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return nil }
        for file in files.sorted() where [".yaml", ".yml", ".json"].contains(where: file.hasSuffix) {
            guard let text = try? String(contentsOfFile: directory + "/" + file, encoding: .utf8),
                  let docs = try? Yams.load_all(yaml: text) else { continue }
            for case let doc as [String: Any] in docs {
                guard doc["kind"] as? String == "Pod", let meta = doc["metadata"] as? [String: Any],
                      meta["name"] as? String == name, (meta["namespace"] as? String ?? "default") == namespace else { continue }
                let labels = (meta["labels"] as? [String: Any] ?? [:]).map { "k8s:\($0.key)=\($0.value)" }
                return (labels + ["k8s:io.kubernetes.pod.namespace=\(namespace)"]).sorted()
            }
        }
        return nil
    }
}
