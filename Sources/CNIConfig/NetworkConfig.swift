import Addressing
import Diagnostics
import Foundation

/// The CNI spec versions this plugin speaks. Results for 0.3.x/0.4.0 carry `ips[].version`.
package let supportedVersions = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
package let defaultAgentSocket = "/var/run/cilium/cilium.sock"

/// A JSON value with its exact type, so decoding errors can name the field and what was wrong.
package enum JSONValue: Decodable {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    package init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    package var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }

    package subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }
}

/// The parts of the network configuration (stdin) cilium-cni uses.
package struct NetworkConfig {
    package var cniVersion: String
    package var name: String
    package var type: String
    package var agentSocket: String
    package var mtu: UInt32?
    /// "key=value", from args.cni.labels.
    package var labels: [String]
    /// runtimeConfig.portMappings (the plugin declares the capability).
    package var portMappings: [(hostPort: UInt16, containerPort: UInt16, proto: String, hostIP: String)] = []
    /// args.cni.namedPorts: the pod's named container ports (what policies may name a port by).
    package var namedPorts: [(name: String, port: UInt16, proto: String)] = []
    package var prevResult: PrevResult?

    /// The expected state from a previous ADD's result.
    package struct PrevResult {
        package struct Interface { package var name: String; package var mac: String?; package var sandbox: String? }
        package struct IP { package var address: String; package var gateway: String?; package var interface: Int? }
        package var interfaces: [Interface]
        package var ips: [IP]
    }

    /// The cniVersion from stdin, if it can be read at all (for error objects and VERSION).
    package static func peekVersion(_ data: Data) -> String? {
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: data),
              case .string(let v)? = value["cniVersion"] else { return nil }
        return v
    }

    /// Parses and validates stdin. Malformed JSON or a field of the wrong type: code 6 naming the field;
    /// a well-formed but unusable value: code 7; an unsupported cniVersion: code 1.
    package static func parse(_ data: Data) throws(CNIError) -> NetworkConfig {
        guard !data.isEmpty else {
            throw CNIError(.decodingFailure, "empty network configuration on stdin",
                           details: "the runtime must send the network configuration as JSON on stdin")
        }
        let root: JSONValue
        do {
            root = try JSONDecoder().decode(JSONValue.self, from: data)
        } catch {
            throw CNIError(.decodingFailure, "network configuration on stdin is not valid JSON",
                           details: JSONSyntax.firstProblem(in: data).map { "\($0)" } ?? jsonErrorText(error))
        }
        guard case .object = root else {
            throw CNIError(.decodingFailure, "network configuration must be a JSON object, got \(root.typeName)")
        }
        let version = try requiredString(root, "cniVersion")
        guard supportedVersions.contains(version) else {
            throw CNIError(.incompatibleVersion, "incompatible CNI versions",
                           details: "config is \"\(version)\", plugin supports \(supportedVersions)")
        }
        var config = NetworkConfig(cniVersion: version, name: try requiredString(root, "name"),
                                   type: try requiredString(root, "type"), agentSocket: defaultAgentSocket,
                                   mtu: nil, labels: [], prevResult: nil)
        if let socket = try optionalString(root, "agentSocket") {
            guard socket.hasPrefix("/"), socket.utf8.count <= 107 else {
                throw CNIError(.invalidConfig, "invalid field \"agentSocket\": \"\(socket)\"",
                               details: "it must be an absolute path to the agent's API socket, at most 107 bytes")
            }
            config.agentSocket = socket
        }
        if let mtu = root["mtu"], mtu != .null {
            guard case .number(let n) = mtu, n == n.rounded() else {
                throw CNIError(.decodingFailure, "field \"mtu\" must be an integer, got \(mtu.typeName)")
            }
            guard (68...65535).contains(n), let value = UInt32(exactly: n) else {
                throw CNIError(.invalidConfig, "invalid field \"mtu\": \(Self.text(n))", details: "it must be between 68 and 65535")
            }
            config.mtu = value
        }
        // runtimeConfig: the capabilities the runtime fills in. The plugin declares portMappings
        // (hostPorts); anything else in it is not used.
        if let runtimeConfig = root["runtimeConfig"], runtimeConfig != .null {
            guard case .object = runtimeConfig else {
                throw CNIError(.decodingFailure, "field \"runtimeConfig\" must be an object, got \(runtimeConfig.typeName)")
            }
            config.portMappings = try parsePortMappings(runtimeConfig["portMappings"])
        }
        config.labels = try parseLabels(root)
        config.namedPorts = try parseNamedPorts(root)
        if let prev = root["prevResult"], prev != .null {
            config.prevResult = try parsePrevResult(prev)
        }
        return config
    }

    /// runtimeConfig.portMappings (CNI CONVENTIONS): [{hostPort, containerPort, protocol, hostIP}].
    private static func parsePortMappings(_ value: JSONValue?) throws(CNIError) -> [(hostPort: UInt16, containerPort: UInt16, proto: String, hostIP: String)] {
        guard let value, value != .null else { return [] }
        guard case .array(let items) = value else {
            throw CNIError(.decodingFailure, "field \"runtimeConfig.portMappings\" must be an array, got \(value.typeName)")
        }
        var out: [(hostPort: UInt16, containerPort: UInt16, proto: String, hostIP: String)] = []
        for (index, item) in items.enumerated() {
            let field = "runtimeConfig.portMappings[\(index)]"
            guard case .object = item else {
                throw CNIError(.decodingFailure, "field \"\(field)\" must be an object, got \(item.typeName)")
            }
            func port(_ name: String) throws(CNIError) -> UInt16 {
                guard case .number(let n)? = item[name] else {
                    throw CNIError(.decodingFailure, "field \"\(field).\(name)\" must be a number")
                }
                guard n == n.rounded(), let p = UInt16(exactly: n), p > 0 else {
                    throw CNIError(.invalidConfig, "invalid field \"\(field).\(name)\": \(Self.text(n))", details: "a port is 1-65535")
                }
                return p
            }
            let hostPort = try port("hostPort"), containerPort = try port("containerPort")
            var proto = "tcp"
            if let p = item["protocol"], p != .null {
                guard case .string(let text) = p, ["tcp", "udp"].contains(text.lowercased()) else {
                    throw CNIError(.invalidConfig, "invalid field \"\(field).protocol\"", details: "tcp or udp (sctp is not served)")
                }
                proto = text.lowercased()
            }
            var hostIP = ""
            if let h = item["hostIP"], h != .null {
                guard case .string(let text) = h, text.isEmpty || (try? IPv4Text.address(text).get()) != nil else {
                    throw CNIError(.invalidConfig, "invalid field \"\(field).hostIP\"", details: "an IPv4 address, or empty for every address of the node")
                }
                hostIP = text
            }
            out.append((hostPort, containerPort, proto, hostIP))
        }
        return out
    }

    /// args.cni.labels (CNI CONVENTIONS): [{"key": k, "value": v}] or, as a shorthand, ["k=v"].
    /// Kubernetes' rules for a pod label (the same as policy selectors apply).
    private static func checkLabel(_ key: String, _ value: String, field: String) throws(CNIError) {
        if let why = LabelText.keyProblem(key) {
            throw CNIError(.invalidConfig, "invalid field \"\(field)\": \"\(Suggestion.excerpt(key))\" is not a label key", details: why)
        }
        if let why = LabelText.valueProblem(value) {
            throw CNIError(.invalidConfig, "invalid field \"\(field)\": \"\(Suggestion.excerpt(value))\" is not a label value", details: why)
        }
    }

    private static func parseLabels(_ root: JSONValue) throws(CNIError) -> [String] {
        guard let args = root["args"], args != .null else { return [] }
        guard case .object = args else { throw CNIError(.decodingFailure, "field \"args\" must be an object, got \(args.typeName)") }
        guard let cni = args["cni"], cni != .null else { return [] }
        guard case .object = cni else { throw CNIError(.decodingFailure, "field \"args.cni\" must be an object, got \(cni.typeName)") }
        guard let labels = cni["labels"], labels != .null else { return [] }
        guard case .array(let items) = labels else {
            throw CNIError(.decodingFailure, "field \"args.cni.labels\" must be an array, got \(labels.typeName)")
        }
        var result: [String] = []
        for (i, item) in items.enumerated() {
            let field = "args.cni.labels[\(i)]"
            switch item {
            case .string(let s):
                guard let eq = s.firstIndex(of: "="), eq != s.startIndex else {
                    throw CNIError(.decodingFailure, "field \"\(field)\" must be \"key=value\", got \"\(Suggestion.excerpt(s))\"")
                }
                try checkLabel(String(s[..<eq]), String(s[s.index(after: eq)...]), field: field)
                result.append(s)
            case .object:
                guard case .string(let key)? = item["key"], !key.isEmpty else {
                    throw CNIError(.decodingFailure, "field \"\(field).key\" must be a non-empty string")
                }
                guard case .string(let value)? = item["value"] else {
                    throw CNIError(.decodingFailure, "field \"\(field).value\" must be a string")
                }
                try checkLabel(key, value, field: field)
                result.append("\(key)=\(value)")
            default:
                throw CNIError(.decodingFailure,
                               "field \"\(field)\" must be {\"key\": ..., \"value\": ...} or \"key=value\", got \(item.typeName)")
            }
        }
        return result
    }

    /// args.cni.namedPorts: [{"name": "http", "containerPort": 8080, "protocol": "TCP"}], as a pod spec's container
    /// ports (the name an IANA service name: 1-15 lowercase letters, digits and '-', with a letter).
    private static func parseNamedPorts(_ root: JSONValue) throws(CNIError) -> [(name: String, port: UInt16, proto: String)] {
        guard case .object? = root["args"], case .object? = root["args"]?["cni"],
              let value = root["args"]?["cni"]?["namedPorts"], value != .null else { return [] }
        guard case .array(let items) = value else {
            throw CNIError(.decodingFailure, "field \"args.cni.namedPorts\" must be an array, got \(value.typeName)")
        }
        var out: [(name: String, port: UInt16, proto: String)] = []
        for (i, item) in items.enumerated() {
            let field = "args.cni.namedPorts[\(i)]"
            guard case .object = item else {
                throw CNIError(.decodingFailure, "field \"\(field)\" must be {\"name\": ..., \"containerPort\": ...}, got \(item.typeName)")
            }
            guard case .string(let name)? = item["name"], NamedPortText.isValid(name) else {
                throw CNIError(.invalidConfig, "invalid field \"\(field).name\"",
                               details: "a port name is 1-15 lowercase letters, digits and '-', with at least one letter, e.g. http-8080")
            }
            guard case .number(let n)? = item["containerPort"], n == n.rounded(), (1...65535).contains(n) else {
                throw CNIError(.invalidConfig, "invalid field \"\(field).containerPort\"", details: "it must be an integer 1-65535")
            }
            var proto = "TCP"
            if let p = item["protocol"], p != .null {
                guard case .string(let text) = p, ["TCP", "UDP", "SCTP"].contains(text.uppercased()) else {
                    throw CNIError(.invalidConfig, "invalid field \"\(field).protocol\"", details: "it must be TCP, UDP or SCTP")
                }
                proto = text.uppercased()
            }
            out.append((name, UInt16(n), proto))
        }
        return out
    }

    private static func parsePrevResult(_ prev: JSONValue) throws(CNIError) -> PrevResult {
        guard case .object = prev else {
            throw CNIError(.decodingFailure, "field \"prevResult\" must be an object, got \(prev.typeName)")
        }
        var result = PrevResult(interfaces: [], ips: [])
        if let interfaces = prev["interfaces"], interfaces != .null {
            guard case .array(let items) = interfaces else {
                throw CNIError(.decodingFailure, "field \"prevResult.interfaces\" must be an array, got \(interfaces.typeName)")
            }
            for (i, item) in items.enumerated() {
                let field = "prevResult.interfaces[\(i)]"
                guard case .object = item else { throw CNIError(.decodingFailure, "field \"\(field)\" must be an object") }
                result.interfaces.append(.init(name: try requiredString(item, "name", field: "\(field).name"),
                                               mac: try optionalString(item, "mac", field: "\(field).mac"),
                                               sandbox: try optionalString(item, "sandbox", field: "\(field).sandbox")))
            }
        }
        if let ips = prev["ips"], ips != .null {
            guard case .array(let items) = ips else {
                throw CNIError(.decodingFailure, "field \"prevResult.ips\" must be an array, got \(ips.typeName)")
            }
            for (i, item) in items.enumerated() {
                let field = "prevResult.ips[\(i)]"
                guard case .object = item else { throw CNIError(.decodingFailure, "field \"\(field)\" must be an object") }
                var interface: Int?
                if let index = item["interface"], index != .null {
                    guard case .number(let n) = index, n >= 0, n == n.rounded(), let value = Int(exactly: n), value <= Int(Int32.max) else {
                        throw CNIError(.decodingFailure, "field \"\(field).interface\" must be a non-negative integer (an index into interfaces)")
                    }
                    interface = value
                }
                result.ips.append(.init(address: try requiredString(item, "address", field: "\(field).address"),
                                        gateway: try optionalString(item, "gateway", field: "\(field).gateway"),
                                        interface: interface))
            }
        }
        return result
    }

    private static func requiredString(_ object: JSONValue, _ key: String, field: String? = nil) throws(CNIError) -> String {
        let field = field ?? key
        guard let value = object[key], value != .null else {
            throw CNIError(.decodingFailure, "missing required field \"\(field)\" in the network configuration")
        }
        guard case .string(let s) = value else {
            throw CNIError(.decodingFailure, "field \"\(field)\" must be a string, got \(value.typeName)")
        }
        return s
    }

    private static func optionalString(_ object: JSONValue, _ key: String, field: String? = nil) throws(CNIError) -> String? {
        guard let value = object[key], value != .null else { return nil }
        guard case .string(let s) = value else {
            throw CNIError(.decodingFailure, "field \"\(field ?? key)\" must be a string, got \(value.typeName)")
        }
        return s
    }

    /// A JSON number as the user wrote it, near enough: 1400, 1e+19, 1.5.
    package static func text(_ n: Double) -> String {
        if let i = Int(exactly: n) { return String(i) }
        return "\(n)"
    }

    private static func jsonErrorText(_ error: any Error) -> String {
        if case DecodingError.dataCorrupted(let context) = error {
            if let underlying = context.underlyingError { return "\(context.debugDescription) \(underlying)" }
            return context.debugDescription
        }
        return "\(error)"
    }
}

extension JSONValue: Equatable {}
