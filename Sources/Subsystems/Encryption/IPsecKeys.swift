import Diagnostics
import Foundation
import CBPF
import LinuxNet

/// A key of upstream's IPsec key file (`encryption.ipsec.keyFile`, default /etc/ipsec/keys): one line each,
///
///     <key ID>[+] rfc4106(gcm(aes)) <hex key and salt> <ICV bits>
///     <key ID>[+] hmac(sha256) <hex authentication key> cbc(aes) <hex encryption key>
///
/// The key ID (1-15) is the SPI of the states made from the key and rides in the packet mark. "+" asks for
/// per-tunnel keys (each pair of nodes and direction gets its own, derived from this one and the nodes' boot
/// IDs) and extended sequence numbers; without it every tunnel shares the key, which upstream deprecated as
/// insecure (GHSA-pwqm-x5x6-5586). Hex may start with "0x".
package struct IPsecKey: Equatable, Sendable {
    package var spi: UInt8
    package var perTunnel: Bool
    package var algorithms: XFRM.Algorithms

    /// ESN goes with per-tunnel keys (a reboot changes the key, so the 64-bit sequence restarts safely).
    package var esn: Bool { perTunnel }
    /// The states' anti-replay window: upstream sets 1024 with ESN and leaves the kernel's default otherwise.
    package var replayWindow: UInt32 { perTunnel ? 1024 : 0 }

    package init(spi: UInt8, perTunnel: Bool, algorithms: XFRM.Algorithms) {
        self.spi = spi
        self.perTunnel = perTunnel
        self.algorithms = algorithms
    }

    /// Upstream's per-tunnel key for packets from the node at `sourceIP` (booted as `sourceBootID`) to the one at
    /// `destinationIP`: each key is SHA-256 (SHA-512 for keys over 32 bytes) of
    /// `key ‖ sourceIP ‖ destinationIP ‖ sourceBootID[0..<36] ‖ destinationBootID[0..<36]`, cut to the key's length
    /// (IPs as 4 bytes, boot IDs as the text of /proc/sys/kernel/random/boot_id). Node A's OUT state to B and B's IN
    /// state from A thus share a key, and a reboot of either changes it. Without "+" the key itself. Nil when a boot
    /// ID is shorter than 36 bytes.
    package func tunnelKey(sourceIP: IPv4Address, destinationIP: IPv4Address,
                           sourceBootID: String, destinationBootID: String) -> IPsecKey? {
        guard perTunnel else { return self }
        let boots = [sourceBootID, destinationBootID].map { Array($0.utf8.prefix(36)) }
        guard boots.allSatisfy({ $0.count == 36 }) else { return nil }
        let derive = { (key: [UInt8]) -> [UInt8] in
            let input = key + sourceIP.bytes + destinationIP.bytes + boots[0] + boots[1]
            return Array((key.count <= 32 ? SHA2.sha256(input) : SHA2.sha512(input)).prefix(key.count))
        }
        var derived = self
        switch algorithms {
        case let .aead(name, key, icvBits):
            derived.algorithms = .aead(name: name, key: derive(key), icvBits: icvBits)
        case let .authenticated(auth, authKey, truncationBits, cipher, cipherKey):
            derived.algorithms = .authenticated(auth: auth, authKey: derive(authKey), truncationBits: truncationBits,
                                                cipher: cipher, cipherKey: derive(cipherKey))
        }
        return derived
    }

    /// The key of the local node's OUT state to a remote node (local → remote) or of its IN state from it
    /// (remote → local): `tunnelKey` in the direction the packets go.
    package func tunnelKey(_ direction: XFRM.Direction, localIP: IPv4Address, remoteIP: IPv4Address,
                           localBootID: String, remoteBootID: String) -> IPsecKey? {
        direction == .out
            ? tunnelKey(sourceIP: localIP, destinationIP: remoteIP, sourceBootID: localBootID, destinationBootID: remoteBootID)
            : tunnelKey(sourceIP: remoteIP, destinationIP: localIP, sourceBootID: remoteBootID, destinationBootID: localBootID)
    }
}

/// Upstream's XFRM marks, routing rule and priorities for IPsec (linux_defaults).
package enum IPsecMarks {
    /// The datapath's marks (bpf/include/cilium_maps.h), which the XFRM states and policies match.
    package static let encrypt = UInt32(CILIUM_MARK_ENCRYPT)
    package static let decrypt = UInt32(CILIUM_MARK_DECRYPT)
    /// The encrypt/decrypt bits (`fwmark 0xd00/0xf00`).
    package static let bitMask: UInt32 = 0x0F00
    package static let nodeIDMask: UInt32 = 0xFFFF_0000
    /// The key ID sits in bits 12-15 of an OUT mark.
    package static let spiShift: UInt32 = 12

    /// The OUT state's and policy's mark towards a node: 0x0E00 | SPI << 12 | nodeID << 16, mask 0xFFFFFF00.
    package static func out(spi: UInt8, nodeID: UInt16) -> XFRM.Mark {
        XFRM.Mark(value: encrypt | UInt32(spi) << spiShift | UInt32(nodeID) << 16, mask: nodeIDMask | 0xFF00)
    }

    /// The IN state's mark for packets from a node: 0x0D00 | nodeID << 16, mask 0xFFFF0F00.
    package static func `in`(nodeID: UInt16) -> XFRM.Mark {
        XFRM.Mark(value: decrypt | UInt32(nodeID) << 16, mask: nodeIDMask | bitMask)
    }

    /// The catch-all OUT block policy's mark (0xe00/0xf00) and priority: packets marked for encryption that no
    /// policy of a node matches (while policies are replaced) are dropped, not sent in clear. Node policies have
    /// priority 0, and the lowest value wins.
    package static let defaultDrop = XFRM.Mark(value: encrypt, mask: bitMask)
    package static let defaultDropPriority: UInt32 = 100
    /// The priority of upstream's FWD policies.
    package static let forwardPriority: UInt32 = 0x0B9F
    /// Decrypted packets (0xd00/0xf00) are routed by table 200, looked up first (`ip rule` priority 1).
    package static let routeTable: UInt32 = 200
    package static let rulePriority: UInt32 = 1
}

/// A key file that cannot be used: `path:line: what is wrong, how to fix it` (no line when it is about the whole
/// file). Messages never quote key material.
package struct IPsecKeyFileError: Error, Equatable, Sendable, CustomStringConvertible {
    package var path: String
    package var line: Int?
    package var message: String

    package init(path: String, line: Int?, message: String) {
        self.path = path
        self.line = line
        self.message = message
    }

    package var description: String { "\(path)\(line.map { ":\($0)" } ?? ""): \(message)" }
}

package enum IPsecKeyFile {
    package static let defaultPath = "/etc/ipsec/keys"
    static let example = "3+ rfc4106(gcm(aes)) <40 hex digits> 128"

    /// The key in use in the file at `path`: its last line (upstream keeps only that one).
    package static func load(path: String = defaultPath) throws(IPsecKeyFileError) -> IPsecKey {
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = access(path, F_OK) == 0 ? "cannot be read" : "does not exist"
            throw IPsecKeyFileError(path: path, line: nil, message: "\(reason); write a key there, e.g. `\(example)`")
        }
        return try parse(String(decoding: data, as: UTF8.self), path: path)
    }

    /// Parses a whole file: every line must be a valid key, and the last one is the key in use. Blank lines are
    /// skipped. Consecutive lines with the same key ID must have the same key (as a rotation must).
    package static func parse(_ text: String, path: String) throws(IPsecKeyFileError) -> IPsecKey {
        var current: IPsecKey?
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let fields = line.split(whereSeparator: \.isWhitespace).map(String.init)
            if fields.isEmpty { continue }
            let key: IPsecKey
            do { key = try parseLine(fields) } catch { throw IPsecKeyFileError(path: path, line: index + 1, message: error.message) }
            if let current, let problem = rotationProblem(from: current, to: key, "the line before") {
                throw IPsecKeyFileError(path: path, line: index + 1, message: problem)
            }
            current = key
        }
        guard let current else {
            throw IPsecKeyFileError(path: path, line: nil, message: "holds no key; write one line like `\(example)`")
        }
        return current
    }

    /// Refuses a reloaded key that keeps the previous key ID with another key: the peers could not tell the two
    /// apart during the rotation. The same key again is no change.
    package static func checkRotation(from previous: IPsecKey, to next: IPsecKey, path: String) throws(IPsecKeyFileError) {
        if let problem = rotationProblem(from: previous, to: next, "the key in use") {
            throw IPsecKeyFileError(path: path, line: nil, message: problem)
        }
    }

    private static func rotationProblem(from previous: IPsecKey, to next: IPsecKey, _ other: String) -> String? {
        guard previous.spi == next.spi, previous != next else { return nil }
        return "this key has key ID \(next.spi) like \(other), but is another key; changing keys needs a new key ID "
            + "(e.g. \(previous.spi % 15 + 1))"
    }

    private struct Problem: Error { var message: String }

    private static func parseLine(_ f: [String]) throws(Problem) -> IPsecKey {
        let aeadForm = "`<key ID>[+] rfc4106(gcm(aes)) <hex key> <ICV bits>`"
        let hmacForm = "`<key ID>[+] hmac(sha256) <hex key> cbc(aes) <hex key>`"
        guard f.count == 4 || f.count == 5 else {
            throw Problem(message: "expected 4 fields (\(aeadForm)) or 5 (\(hmacForm)), found \(f.count)")
        }
        if f.count == 4, f[1].hasPrefix("hmac(") { throw Problem(message: "an hmac line has 5 fields, \(hmacForm); found 4") }
        if f.count == 5, f[1].hasPrefix("rfc") { throw Problem(message: "an AEAD line has 4 fields, \(aeadForm); found 5") }
        let perTunnel = f[0].hasSuffix("+")
        let id = perTunnel ? String(f[0].dropLast()) : f[0]
        guard !id.isEmpty, id.allSatisfy(\.isASCII), id.allSatisfy(\.isNumber), let spi = Int(id) else {
            throw Problem(message: "the key ID \(quoted(f[0])) is not a number; start the line with a key ID 1-15 (e.g. `3+`)")
        }
        guard (1...15).contains(spi) else {
            throw Problem(message: "the key ID \(spi) is out of range; use 1-15 (it rides in 4 bits of the packet mark)")
        }
        if f.count == 4 {
            guard f[1] == "rfc4106(gcm(aes))" else {
                throw Problem(message: "unknown AEAD algorithm \(quoted(f[1])); use rfc4106(gcm(aes))")
            }
            let key = try hex(f[2], "AEAD key")
            guard [20, 28, 36].contains(key.count) else {
                throw Problem(message: "the rfc4106(gcm(aes)) key has \(key.count) bytes; it takes a 16-, 24- or 32-byte AES key "
                              + "and a 4-byte salt: write 40, 56 or 72 hex digits")
            }
            // Upstream's parser also takes 256, but the kernel's rfc4106 refuses it (GCM tags are at most 128 bits).
            guard let icv = UInt32(f[3]), icv == 96 || icv == 128 else {
                throw Problem(message: "the ICV length \(quoted(f[3])) is not supported; use 128 (or 96) bits")
            }
            return IPsecKey(spi: UInt8(spi), perTunnel: perTunnel, algorithms: .aead(name: f[1], key: key, icvBits: icv))
        }
        // hmac(sha256) and hmac(sha512) as `cilium encryption create-key` makes them; truncated to half the
        // digest as RFC 4868 says (the kernel's own default for sha256 is a non-standard 96 bits).
        let truncation: [String: UInt32] = ["hmac(sha256)": 128, "hmac(sha512)": 256]
        guard let bits = truncation[f[1]] else {
            throw Problem(message: "unknown authentication algorithm \(quoted(f[1])); use hmac(sha256) or hmac(sha512)")
        }
        let authKey = try hex(f[2], "\(f[1]) key")
        // At least 16 bytes; at most 64, the most the per-tunnel derivation (SHA-512) can make.
        guard (16...64).contains(authKey.count) else {
            throw Problem(message: "the \(f[1]) key has \(authKey.count) bytes; use 16 to 64 bytes (32 to 128 hex digits)")
        }
        guard f[3] == "cbc(aes)" else {
            throw Problem(message: "unknown cipher \(quoted(f[3])); use cbc(aes) after the authentication key")
        }
        let cipherKey = try hex(f[4], "cbc(aes) key")
        guard [16, 24, 32].contains(cipherKey.count) else {
            throw Problem(message: "the cbc(aes) key has \(cipherKey.count) bytes; use 16, 24 or 32 bytes (32, 48 or 64 hex digits)")
        }
        return IPsecKey(spi: UInt8(spi), perTunnel: perTunnel,
                        algorithms: .authenticated(auth: f[1], authKey: authKey, truncationBits: bits,
                                                   cipher: f[3], cipherKey: cipherKey))
    }

    /// A field as an error message quotes it, unless it looks like key material (a field out of place).
    private static func quoted(_ field: String) -> String {
        let bare = field.hasPrefix("0x") ? field.dropFirst(2) : Substring(field)
        if bare.count >= 16, bare.allSatisfy(\.isHexDigit) { return "(hex digits: is the key in the wrong place?)" }
        return "\"\(Suggestion.excerpt(field, limit: 40))\""
    }

    /// Hex digits (after an optional "0x") as bytes. The error never repeats the text: it is a secret.
    private static func hex(_ text: String, _ what: String) throws(Problem) -> [UInt8] {
        let digits = Array((text.hasPrefix("0x") || text.hasPrefix("0X") ? text.dropFirst(2) : Substring(text)).utf8)
        let how = "write it as hex digits, e.g. from `dd if=/dev/urandom bs=20 count=1 | xxd -p -c 64`"
        guard digits.count % 2 == 0, !digits.isEmpty else {
            throw Problem(message: "the \(what) has \(digits.count) hex digits, not an even number above 0; \(how)")
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        for i in stride(from: 0, to: digits.count, by: 2) {
            guard let high = hexValue(digits[i]), let low = hexValue(digits[i + 1]) else {
                throw Problem(message: "the \(what) is not hex (digit \(hexValue(digits[i]) == nil ? i + 1 : i + 2) is not 0-9 or a-f); \(how)")
            }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

extension IPsecKey {
    /// An ESP tunnel state with this key between two nodes (reqid 1, upstream's default).
    package func state(source: IPv4Address, destination: IPv4Address, reqid: UInt32 = 1,
                       mark: XFRM.Mark? = nil, outputMark: XFRM.Mark? = nil) -> XFRM.State {
        XFRM.State(source: source, destination: destination, spi: UInt32(spi), reqid: reqid, mode: .tunnel,
                   algorithms: algorithms, replayWindow: replayWindow, esn: esn, mark: mark, outputMark: outputMark)
    }
}
