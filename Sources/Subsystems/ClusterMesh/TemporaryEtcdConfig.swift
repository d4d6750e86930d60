// TEMPORARY until the libcurl transport lands (branch curl): the shapes it provides.
import Foundation
import KVStore

struct EtcdTLSConfig { var caFile: String?; var certFile: String?; var keyFile: String? }
struct EtcdClientConfig {
    var endpoints: [String]
    static func load(path: String) throws -> EtcdClientConfig {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let eps = text.split(separator: "\n").filter { $0.hasPrefix("- ") }.map { String($0.dropFirst(2)) }
        return EtcdClientConfig(endpoints: eps)
    }
}
extension EtcdKVStore {
    convenience init(config: EtcdClientConfig, timeout: Duration) throws { try self.init(endpoints: config.endpoints, timeout: timeout) }
    convenience init(endpoints: [String], timeout: Duration, tls: EtcdTLSConfig?) throws { try self.init(endpoints: endpoints, timeout: timeout) }
}
