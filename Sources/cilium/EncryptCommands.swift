import API
import HTTPTransport
import ArgumentParser
import Foundation

/// `cilium encrypt status` and `cilium encrypt rotate-key`.
struct EncryptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "encrypt", abstract: "Transparent encryption (WireGuard, IPsec).",
                                                    subcommands: [Status.self, RotateKey.self])

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The encryption mode, the device, its key and its peers.")
        @OptionGroup var agent: AgentOptions
        @Option(name: [.customShort("o"), .long]) var output: OutputFormat = .text

        func run() throws {
            try reportingErrors {
                let (status, data) = try agent.client.send(method: "GET", path: "/v1/encrypt/status", body: nil)
                // Served only while the Encryption subsystem runs: otherwise encryption is off.
                let value: EncryptionStatusResponse
                if status == 503 {
                    value = EncryptionStatusResponse(mode: "Disabled")
                } else if (200..<300).contains(status) {
                    value = try JSONDecoder().decode(EncryptionStatusResponse.self, from: data)
                } else {
                    throw CLIError(APIClientError.message(fromBody: data))
                }
                if output == .json { return try printJSON(value) }
                print(Self.text(value), terminator: "")
            }
        }

        static func text(_ s: EncryptionStatusResponse) -> String {
            var out = "Encryption: \(s.mode)\n"
            for i in s.wireguard?.interfaces ?? [] {
                out += "Interface: \(i.name)\n\tPublic key: \(i.publicKey)\n\tNumber of peers: \(i.peerCount)\n"
            }
            if let ipsec = s.ipsec {
                out += "Decryption interface(s): \(ipsec.decryptInterfaces.joined(separator: ", "))\n"
                out += "Keys in use: \(ipsec.keysInUse)\nMax Seq. Number: \(ipsec.maxSeqNumber)\nErrors: \(ipsec.errorCount)\n"
                for (name, count) in ipsec.xfrmErrors.sorted(by: { $0.key < $1.key }) { out += "\t\(name): \(count)\n" }
            }
            if let msg = s.msg { out += "Note: \(msg)\n" }
            return out
        }
    }

    struct RotateKey: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-key",
            abstract: "Make a new WireGuard key pair for this node and publish it; peers switch to it, connections stay.")
        @OptionGroup var agent: AgentOptions
        @Option(name: [.customShort("o"), .long]) var output: OutputFormat = .text

        func run() throws {
            try reportingErrors {
                let r = try JSONDecoder().decode(KeyRotationResponse.self, from: try agent.request("POST", "/v1/encrypt/rotate-key"))
                if output == .json { return try printJSON(r) }
                print("Rotated the WireGuard key of cilium_wg0: \(r.previousPublicKey) -> \(r.publicKey)")
            }
        }
    }
}
