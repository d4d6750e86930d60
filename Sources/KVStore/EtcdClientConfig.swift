import Diagnostics
import Foundation
import Yams
#if canImport(Glibc)
import Glibc
#endif

/// TLS towards etcd (`https://` endpoints): the CA that signs the servers' certificates
/// (nil: the system's CAs) and the client certificate and key for etcd's
/// `--client-cert-auth`. Peer and host name verification are always on.
public struct EtcdTLSConfig: Sendable, Hashable {
    public var caFile: String?
    public var certFile: String?
    public var keyFile: String?

    public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil) {
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
    }

    /// The first file that cannot be read, in words; nil when all can.
    func unreadableFile() -> String? {
        let files: [(String?, String)] = [(caFile, "CA file (trusted-ca-file)"), (certFile, "client certificate (cert-file)"),
                                          (keyFile, "client key (key-file)")]
        for case let (path?, what) in files where access(path, R_OK) != 0 {
            return "cannot read the \(what) \(path): \(errnoText(errno, lowercased: true))"
        }
        return nil
    }
}

/// Upstream Cilium's etcd client configuration: the format of `etcd.config` and of each file in
/// the `clustermesh-config` directory.
///
/// ```yaml
/// endpoints:
/// - https://cluster1.mesh.cilium.io:2379
/// trusted-ca-file: /var/lib/cilium/clustermesh/common-etcd-client-ca.crt   # or ca-file
/// cert-file: /var/lib/cilium/clustermesh/common-etcd-client.crt
/// key-file: /var/lib/cilium/clustermesh/common-etcd-client.key
/// ```
/// Relative file paths are taken from the configuration file's directory. Other keys of
/// upstream's format (username, password, timeouts) are ignored.
public struct EtcdClientConfig: Sendable, Hashable {
    public var endpoints: [String]
    /// Set when any of the three files is named.
    public var tls: EtcdTLSConfig?

    public init(endpoints: [String], tls: EtcdTLSConfig? = nil) {
        self.endpoints = endpoints
        self.tls = tls
    }

    /// Reads and checks a configuration file; its errors name the file, what is wrong and how
    /// to fix it.
    public static func load(path: String) throws -> EtcdClientConfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            let reason = access(path, R_OK) != 0 ? errnoText(errno, lowercased: true) : "not UTF-8 text"
            throw problem(path, "cannot read it: \(reason)")
        }
        return try parse(text, path: path)
    }

    /// Parses the text of a configuration file (`path` names it in errors and anchors relative paths).
    public static func parse(_ text: String, path: String) throws -> EtcdClientConfig {
        let document: Any?
        do {
            document = try Yams.load(yaml: text)
        } catch {
            throw problem(path, "not valid YAML: \(error)")
        }
        guard let map = document as? [String: Any] else {
            throw problem(path, "expected a mapping with `endpoints:` (a list of https://host:2379 URLs), "
                + "`trusted-ca-file:`, `cert-file:` and `key-file:`")
        }
        let list: [Any]
        switch map["endpoints"] {
        case let items as [Any]: list = items
        case let single as String: list = [single]
        case nil: throw problem(path, "no `endpoints:`; add a list such as `endpoints: [\"https://127.0.0.1:2379\"]`")
        default: throw problem(path, "`endpoints:` must be a list of URLs such as https://127.0.0.1:2379")
        }
        var endpoints: [String] = []
        for item in list {
            guard let url = item as? String else {
                throw problem(path, "`endpoints:` entry \(item) is not a URL; write it as https://host:2379")
            }
            do {
                _ = try HTTPEndpoint(parsing: url)
            } catch {
                throw problem(path, "endpoint \(url): \(error.reason) (write it as https://host:2379 or http://host:2379)")
            }
            endpoints.append(url)
        }
        guard !endpoints.isEmpty else {
            throw problem(path, "`endpoints:` is empty; name at least one etcd URL such as https://127.0.0.1:2379")
        }
        let directory = (path as NSString).deletingLastPathComponent
        func file(_ keys: String...) throws -> String? {
            for key in keys {
                guard let value = map[key] else { continue }
                guard let text = value as? String, !text.isEmpty else {
                    throw problem(path, "`\(key):` must be a file path")
                }
                return text.hasPrefix("/") || directory.isEmpty ? text : "\(directory)/\(text)"
            }
            return nil
        }
        let ca = try file("trusted-ca-file", "ca-file")
        let cert = try file("cert-file")
        let key = try file("key-file")
        if (cert == nil) != (key == nil) {
            throw problem(path, cert == nil ? "`key-file:` without `cert-file:`; name both (the client certificate and its key)"
                                            : "`cert-file:` without `key-file:`; name both (the client certificate and its key)")
        }
        let tls = ca == nil && cert == nil ? nil : EtcdTLSConfig(caFile: ca, certFile: cert, keyFile: key)
        return EtcdClientConfig(endpoints: endpoints, tls: tls)
    }

    private static func problem(_ path: String, _ reason: String) -> KVStoreError {
        KVStoreError(.invalidArgument, source: "etcd config \(path)", operation: "load", reason: reason)
    }
}
