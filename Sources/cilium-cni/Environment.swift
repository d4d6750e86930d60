import CNIConfig
import Diagnostics
import LinuxNet
import Glibc

/// The CNI_* environment of one invocation, validated for the command.
struct CNIEnvironment {
    enum Command: String { case add = "ADD", del = "DEL", check = "CHECK", version = "VERSION", status = "STATUS", gc = "GC" }

    var command: Command
    var containerID: String
    /// Empty for a DEL without a namespace (the spec allows it).
    var netns: String
    var ifName: String
    /// CNI_ARGS as key/value pairs ("K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod").
    var args: [String: String]

    static func command(from env: [String: String]) throws(CNIError) -> Command {
        guard let raw = env["CNI_COMMAND"], !raw.isEmpty else {
            throw CNIError(.invalidEnvironment, "required env variables [CNI_COMMAND] missing")
        }
        guard let command = Command(rawValue: raw) else {
            throw CNIError(.invalidEnvironment, "unknown CNI_COMMAND: \(raw)",
                           details: "supported: ADD, DEL, CHECK, VERSION, STATUS, GC")
        }
        return command
    }

    /// What ADD/DEL/CHECK need; CNI_NETNS is optional for DEL. CNI_PATH is not required: this plugin
    /// delegates to no other plugin.
    static func parse(_ env: [String: String], command: Command) throws(CNIError) -> CNIEnvironment {
        var required = ["CNI_CONTAINERID", "CNI_IFNAME"]
        if command == .add || command == .check { required.insert("CNI_NETNS", at: 1) }
        let missing = required.filter { (env[$0] ?? "").isEmpty }
        guard missing.isEmpty else {
            throw CNIError(.invalidEnvironment, "required env variables [\(missing.joined(separator: ","))] missing")
        }
        let containerID = env["CNI_CONTAINERID"]!, ifName = env["CNI_IFNAME"]!, netns = env["CNI_NETNS"] ?? ""
        guard isValidContainerID(containerID) else {
            throw CNIError(.invalidEnvironment, "invalid CNI_CONTAINERID \"\(containerID)\"",
                           details: "it must start with a letter or digit, followed by letters, digits, '_', '.' or '-'")
        }
        guard isValidInterfaceName(ifName) else {
            throw CNIError(.invalidEnvironment, "invalid CNI_IFNAME \"\(ifName)\"",
                           details: "an interface name must be 1-15 bytes, not '.' or '..', without '/', ':' or whitespace")
        }
        guard netns.isEmpty || netns.hasPrefix("/") else {
            throw CNIError(.invalidEnvironment, "invalid CNI_NETNS \"\(netns)\"", details: "it must be an absolute path")
        }
        return CNIEnvironment(command: command, containerID: containerID, netns: netns, ifName: ifName,
                              args: try parseArgs(env["CNI_ARGS"] ?? ""))
    }

    /// CNI_ARGS: "K=V;K2=V2". Unknown keys are ignored (as with IgnoreUnknown=1).
    static func parseArgs(_ text: String) throws(CNIError) -> [String: String] {
        var args: [String: String] = [:]
        for pair in text.split(separator: ";", omittingEmptySubsequences: true) {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard kv.count == 2, !kv[0].isEmpty else {
                throw CNIError(.invalidEnvironment, "invalid CNI_ARGS pair \"\(pair)\"", details: "expected KEY=VALUE pairs separated by ';'")
            }
            args[String(kv[0])] = String(kv[1])
        }
        return args
    }

    static func isValidContainerID(_ id: String) -> Bool {
        guard let first = id.unicodeScalars.first, first.isASCIIAlphanumeric else { return false }
        return id.unicodeScalars.allSatisfy { $0.isASCIIAlphanumeric || $0 == "_" || $0 == "." || $0 == "-" }
    }

    static func isValidInterfaceName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count < 16 && name != "." && name != ".."
            && !name.unicodeScalars.contains { $0 == "/" || $0 == ":" || $0.properties.isWhitespace || $0.value < 0x20 }
    }

    /// The host-side veth: "lxc" + the first 11 hex digits of SHA-256(container id), 14 characters.
    static func hostInterfaceName(containerID: String) -> String {
        "lxc" + SHA256.hex(containerID).prefix(11)
    }

    /// Checks that CNI_NETNS names a network namespace. A path that does not exist means the container is
    /// gone: code 3 ("container unknown or does not exist"), which also tells the runtime that nothing was
    /// set up and no DEL is needed. A path that exists but is not a namespace is a bad variable: code 4.
    static func checkNamespace(_ path: String) throws(CNIError) -> NetworkNamespace {
        let namespace = NetworkNamespace(path: path)
        var st = stat()
        guard stat(path, &st) == 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR {
                throw CNIError(.unknownContainer, "the container's network namespace \(path) does not exist",
                               details: "CNI_NETNS=\(path): the container is gone or its namespace was deleted")
            }
            throw CNIError(.invalidEnvironment, "cannot access CNI_NETNS \(path)", details: errnoText(code))
        }
        guard namespace.exists else {
            throw CNIError(.invalidEnvironment, "CNI_NETNS \(path) is not a network namespace",
                           details: "expected /proc/PID/ns/net or a bind mount of one (e.g. /run/netns/NAME)")
        }
        return namespace
    }
}

extension Unicode.Scalar {
    var isASCIIAlphanumeric: Bool {
        ("a"..."z").contains(self) || ("A"..."Z").contains(self) || ("0"..."9").contains(self)
    }
}
