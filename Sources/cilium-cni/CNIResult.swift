import CNIConfig
import Foundation

/// The ADD result (SPEC "Success"): one host and one container interface, one IPv4 address, a default route.
struct CNIResult: Encodable {
    struct Interface: Encodable {
        var name: String
        var mac: String
        /// Only reported for cniVersion 1.1.0 (the field was added there).
        var mtu: Int?
        /// The netns path for the container side; absent for the host side.
        var sandbox: String?
    }

    struct IPConfig: Encodable {
        /// "4": only in 0.3.x/0.4.0 results.
        var version: String?
        var address: String
        var gateway: String
        /// Index into `interfaces`.
        var interface: Int
    }

    struct Route: Encodable {
        var dst: String
        var gw: String
    }

    struct DNS: Encodable {}

    var cniVersion: String
    var interfaces: [Interface]
    var ips: [IPConfig]
    var routes: [Route]
    var dns = DNS()

    func json() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)) ?? Data()
    }
}

/// The VERSION answer.
struct VersionResult: Encodable {
    var cniVersion: String
    var supportedVersions: [String]

    func json() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)) ?? Data()
    }
}
