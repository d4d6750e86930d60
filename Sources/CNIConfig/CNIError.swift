import Foundation

/// A CNI error object (SPEC "Error"): printed on stdout, exit status 1.
/// Codes 0-99 are the spec's well-known ones; 100+ are this plugin's.
package struct CNIError: Error, CustomStringConvertible {
    package var code: Int
    package var msg: String
    package var details: String

    package init(_ code: Code, _ msg: String, details: String = "") {
        self.code = code.rawValue
        self.msg = msg
        self.details = details
    }

    package enum Code: Int {
        // Well-known codes of the CNI spec.
        case incompatibleVersion = 1
        case unsupportedField = 2
        case unknownContainer = 3
        case invalidEnvironment = 4
        case ioFailure = 5
        case decodingFailure = 6
        case invalidConfig = 7
        case tryAgainLater = 11
        case pluginNotAvailable = 50
        // cilium-cni's own codes.
        /// The agent answered, but not in the API's shape.
        case agentProtocol = 100
        /// The agent refused to hand out an address (pool exhausted, IPAM disabled...).
        case ipamFailure = 101
        /// Creating or configuring the interfaces failed.
        case interfaceSetup = 102
        /// The agent refused to create (or delete) the endpoint.
        case endpointRefused = 103
        /// CHECK found the attachment missing or different from prevResult.
        case checkFailed = 104
    }

    package var description: String { details.isEmpty ? msg : "\(msg): \(details)" }

    package func json(cniVersion: String) -> Data {
        var object: [String: Any] = ["cniVersion": cniVersion, "code": code, "msg": msg]
        if !details.isEmpty { object["details"] = details }
        return (try? JSONSerialization.data(withJSONObject: object,
                                            options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])) ?? Data()
    }
}
