import Foundation
import LinuxNet
import Testing
@testable import Encryption

private func bytes(_ hex: String) -> [UInt8] { WireGuardKey.bytes(hex: hex)! }
private func hex(_ b: [UInt8]) -> String { WireGuardKey.hex(b) }

/// SHA-256 and SHA-512 against FIPS 180-4's examples, and messages whose padding crosses a block boundary.
@Suite struct SHA2Tests {
    @Test func fipsVectors() {
        #expect(hex(SHA2.sha256(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(hex(SHA2.sha256([])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(hex(SHA2.sha256(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(hex(SHA2.sha512(Array("abc".utf8))) == "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
                + "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f")
        let m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"
        #expect(hex(SHA2.sha512(Array(m896.utf8))) == "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018"
                + "501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909")
    }

    /// Lengths where the padding needs one block more (55/56 for SHA-256, 111/112 for SHA-512); digests from Python's hashlib.
    @Test func blockBoundaries() {
        let a = { (n: Int) in [UInt8](repeating: UInt8(ascii: "a"), count: n) }
        #expect(hex(SHA2.sha256(a(55))) == "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318")
        #expect(hex(SHA2.sha256(a(56))) == "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a")
        #expect(hex(SHA2.sha256(a(119))) == "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb")
        #expect(hex(SHA2.sha512(a(111))).hasPrefix("fa9121c7b32b9e01733d034cfc78cbf67f926c7ed83e82200ef86818196921760b"))
        #expect(hex(SHA2.sha512(a(112))).hasPrefix("c01d080efd492776a1c43bd23dd99d0a2e626d481e16782e75d54c2503b5dc32bd"))
        #expect(hex(SHA2.sha512(a(239))).hasPrefix("52c853cb8d907f3d4d6b889beb027985d7c273486d75f8baf26f80d24e90c74c6c"))
    }
}

/// Upstream's key file: both line forms, "+", 0x, the last line in use, and each refusal with file:line.
@Suite struct IPsecKeyFileTests {
    static let aeadKey = String(repeating: "4a", count: 20)
    static let path = "/etc/ipsec/keys"

    func parse(_ text: String) throws -> IPsecKey { try IPsecKeyFile.parse(text, path: Self.path) }

    func refusal(_ text: String) -> IPsecKeyFileError? {
        do { _ = try IPsecKeyFile.parse(text, path: Self.path); return nil } catch { return error }
    }

    @Test func goodLines() throws {
        let aead = try parse("3+ rfc4106(gcm(aes)) 0x\(Self.aeadKey) 128\n")
        #expect(aead == IPsecKey(spi: 3, perTunnel: true, algorithms: .aead(name: "rfc4106(gcm(aes))", key: bytes(Self.aeadKey), icvBits: 128)))
        #expect(aead.esn && aead.replayWindow == 1024)
        let aes256 = try parse("15 rfc4106(gcm(aes)) \(String(repeating: "01", count: 36)) 96")
        #expect(aes256.spi == 15 && !aes256.perTunnel && !aes256.esn && aes256.replayWindow == 0)
        let legacy = try parse("1 hmac(sha256) \(String(repeating: "ab", count: 16)) cbc(aes) 0x\(String(repeating: "cd", count: 16))")
        #expect(legacy.algorithms == .authenticated(auth: "hmac(sha256)", authKey: [UInt8](repeating: 0xab, count: 16), truncationBits: 128,
                                                    cipher: "cbc(aes)", cipherKey: [UInt8](repeating: 0xcd, count: 16)))
        let sha512 = try parse("2+ hmac(sha512) \(String(repeating: "AB", count: 32)) cbc(aes) \(String(repeating: "cd", count: 32))")
        guard case .authenticated(_, _, let bits, _, _) = sha512.algorithms else { Issue.record("not hmac"); return }
        #expect(bits == 256 && sha512.perTunnel)
    }

    /// Every line must be valid; the last one is the key in use. Blank lines do not count.
    @Test func lastLineWins() throws {
        let file = "1 rfc4106(gcm(aes)) \(Self.aeadKey) 128\n\n2+ rfc4106(gcm(aes)) \(String(repeating: "5b", count: 20)) 128\n"
        let key = try parse(file)
        #expect(key.spi == 2 && key.perTunnel)
        let bad = refusal("1 rfc4106(gcm(aes)) \(Self.aeadKey) 128\n2 rfc4106(gcm(aes)) 12345 128\n")
        #expect(bad?.line == 2)
    }

    @Test func eachRefusalNamesFileLineAndFix() {
        let k = Self.aeadKey
        let cases: [(String, Int?, String)] = [
            ("", nil, "holds no key; write one line like"),
            ("3 rfc4106(gcm(aes)) \(k)", 1, "expected 4 fields"),
            ("3 rfc4106(gcm(aes)) \(k) 128 extra", 1, "an AEAD line has 4 fields"),
            ("3 hmac(sha256) \(k) cbc(aes)", 1, "an hmac line has 5 fields"),
            ("x rfc4106(gcm(aes)) \(k) 128", 1, "the key ID \"x\" is not a number"),
            ("0 rfc4106(gcm(aes)) \(k) 128", 1, "the key ID 0 is out of range; use 1-15"),
            ("16+ rfc4106(gcm(aes)) \(k) 128", 1, "the key ID 16 is out of range"),
            ("\n\n3 rfc4309(ccm(aes)) \(k) 128", 3, "unknown AEAD algorithm \"rfc4309(ccm(aes))\"; use rfc4106(gcm(aes))"),
            ("3 rfc4106(gcm(aes)) \(k)0 128", 1, "41 hex digits, not an even number"),
            ("3 rfc4106(gcm(aes)) zz\(k.dropFirst(2)) 128", 1, "the AEAD key is not hex (digit 1"),
            ("3 rfc4106(gcm(aes)) \(k.dropFirst(8)) 128", 1, "key has 16 bytes; it takes a 16-, 24- or 32-byte AES key and a 4-byte salt"),
            ("3 rfc4106(gcm(aes)) \(k) 64", 1, "the ICV length \"64\" is not supported"),
            ("3 rfc4106(gcm(aes)) \(k) 256", 1, "use 128 (or 96) bits"),
            ("3 hmac(md5) \(k) cbc(aes) \(k.prefix(32))", 1, "unknown authentication algorithm \"hmac(md5)\""),
            ("3 hmac(sha256) \(k.prefix(30)) cbc(aes) \(k.prefix(32))", 1, "the hmac(sha256) key has 15 bytes; use 16 to 64"),
            ("3 hmac(sha256) \(k) cbc(des) \(k.prefix(32))", 1, "unknown cipher \"cbc(des)\"; use cbc(aes)"),
            ("3 hmac(sha256) \(k) cbc(aes) \(k.prefix(30))", 1, "the cbc(aes) key has 15 bytes; use 16, 24 or 32"),
            ("3 \(k) rfc4106(gcm(aes)) 128", 1, "(hex digits: is the key in the wrong place?)"),
            ("3 rfc4106(gcm(aes)) \(k) 128\n3 rfc4106(gcm(aes)) \(String(k.reversed())) 128", 2,
             "this key has key ID 3 like the line before, but is another key; changing keys needs a new key ID (e.g. 4)"),
        ]
        for (text, line, message) in cases {
            guard let error = refusal(text) else { Issue.record("accepted: \(text)"); continue }
            #expect(error.line == line, "\(error)")
            #expect(error.message.contains(message), "\(error)")
            #expect(error.description.hasPrefix(Self.path + (line.map { ":\($0): " } ?? ": ")))
            #expect(!error.description.contains(k), "the key is secret: \(error)")
        }
        // The same line twice is no change.
        #expect(refusal("3 rfc4106(gcm(aes)) \(k) 128\n3 rfc4106(gcm(aes)) \(k) 128") == nil)
    }

    @Test func missingFile() {
        do {
            _ = try IPsecKeyFile.load(path: "/nonexistent/ipsec-keys")
            Issue.record("loaded")
        } catch {
            #expect(error.description == "/nonexistent/ipsec-keys: does not exist; write a key there, e.g. `3+ rfc4106(gcm(aes)) <40 hex digits> 128`")
        }
    }

    @Test func rotationNeedsANewSPI() throws {
        let old = try parse("3+ rfc4106(gcm(aes)) \(Self.aeadKey) 128")
        let sameID = try parse("3+ rfc4106(gcm(aes)) \(String(repeating: "77", count: 20)) 128")
        let next = try parse("4+ rfc4106(gcm(aes)) \(String(repeating: "77", count: 20)) 128")
        #expect(throws: IPsecKeyFileError(path: Self.path, line: nil, message: "this key has key ID 3 like the key in use, but is "
                                          + "another key; changing keys needs a new key ID (e.g. 4)")) {
            try IPsecKeyFile.checkRotation(from: old, to: sameID, path: Self.path)
        }
        try IPsecKeyFile.checkRotation(from: old, to: next, path: Self.path)
        try IPsecKeyFile.checkRotation(from: old, to: old, path: Self.path)
        // 15 wraps to 1.
        let last = try parse("15 rfc4106(gcm(aes)) \(Self.aeadKey) 128")
        #expect(throws: IPsecKeyFileError.self) {
            try IPsecKeyFile.checkRotation(from: last, to: try parse("15 rfc4106(gcm(aes)) \(String(repeating: "77", count: 20)) 128"), path: "k")
        }
        #expect(IPsecKeyFileError(path: "k", line: nil, message: "m (e.g. 1)").description == "k: m (e.g. 1)")
    }
}

/// Upstream's per-tunnel derivation: SHA-256 (SHA-512 above 32 bytes) over key ‖ source IP ‖ destination IP ‖ source
/// boot ID ‖ destination boot ID, cut to the key's length. The expected keys were computed independently with
/// Python's hashlib from the same concatenation.
@Suite struct IPsecDerivationTests {
    let a = IPv4Address("10.0.0.1")!, b = IPv4Address("10.0.0.2")!
    let bootA = "11111111-2222-3333-4444-555555555555", bootB = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"

    func aeadKey(_ key: IPsecKey?) -> String? {
        guard case .aead(_, let k, _)? = key?.algorithms else { return nil }
        return hex(k)
    }

    @Test func aeadKnownAnswers() {
        let global = IPsecKey(spi: 3, perTunnel: true, algorithms: .aead(name: "rfc4106(gcm(aes))", key: Array(1...20), icvBits: 128))
        // Node A's OUT state to B = B's IN state from A: key(a ‖ b ‖ bootA ‖ bootB).
        let aToB = "a437020ac0baa1da77f9335c94191ff6ccd01d4a", bToA = "34a2d2e5e7f4f9e7b98570b09051f1265b188af7"
        #expect(aeadKey(global.tunnelKey(sourceIP: a, destinationIP: b, sourceBootID: bootA, destinationBootID: bootB)) == aToB)
        #expect(aeadKey(global.tunnelKey(.out, localIP: a, remoteIP: b, localBootID: bootA, remoteBootID: bootB)) == aToB)
        #expect(aeadKey(global.tunnelKey(.in, localIP: b, remoteIP: a, localBootID: bootB, remoteBootID: bootA)) == aToB)
        #expect(aeadKey(global.tunnelKey(.in, localIP: a, remoteIP: b, localBootID: bootA, remoteBootID: bootB)) == bToA)
        #expect(aeadKey(global.tunnelKey(.out, localIP: b, remoteIP: a, localBootID: bootB, remoteBootID: bootA)) == bToA)
        // Only the first 36 bytes of a boot ID count (a trailing newline does not); a shorter one gives no key.
        #expect(aeadKey(global.tunnelKey(sourceIP: a, destinationIP: b, sourceBootID: bootA + "\n", destinationBootID: bootB)) == aToB)
        #expect(global.tunnelKey(sourceIP: a, destinationIP: b, sourceBootID: "short", destinationBootID: bootB) == nil)
        // A 36-byte key (AES-256 and salt) goes through SHA-512.
        let aes256 = IPsecKey(spi: 3, perTunnel: true, algorithms: .aead(name: "rfc4106(gcm(aes))", key: Array(1...36), icvBits: 128))
        #expect(aeadKey(aes256.tunnelKey(sourceIP: a, destinationIP: b, sourceBootID: bootA, destinationBootID: bootB))
                == "f45ae3f6ebec7e320a7fd0234be190c3741490880015e400ae24f714590f878401f6376b")
        // SPI, ICV and the rest stay.
        let derived = global.tunnelKey(sourceIP: a, destinationIP: b, sourceBootID: bootA, destinationBootID: bootB)
        #expect(derived?.spi == 3 && derived?.perTunnel == true)
    }

    @Test func legacyKnownAnswersAndGlobalKeys() {
        let global = IPsecKey(spi: 1, perTunnel: true, algorithms: .authenticated(
            auth: "hmac(sha256)", authKey: Array(0x20..<0x40), truncationBits: 128, cipher: "cbc(aes)", cipherKey: Array(0x40..<0x50)))
        let derived = global.tunnelKey(sourceIP: a, destinationIP: b, sourceBootID: bootA, destinationBootID: bootB)
        #expect(derived?.algorithms == .authenticated(
            auth: "hmac(sha256)", authKey: bytes("944e44db97ed3de7fdfa0367591eb2edf8c97bbf55b58bc2bbd4091c75d1a5b6"), truncationBits: 128,
            cipher: "cbc(aes)", cipherKey: bytes("6d78eea2c84a68074d631e5f9568dac4")))
        // Without "+", every tunnel uses the key itself.
        var shared = global
        shared.perTunnel = false
        #expect(shared.tunnelKey(.out, localIP: a, remoteIP: b, localBootID: bootA, remoteBootID: bootB) == shared)
    }

    @Test func marks() {
        #expect(IPsecMarks.out(spi: 3, nodeID: 0x1234) == XFRM.Mark(value: 0x1234_3E00, mask: 0xFFFF_FF00))
        #expect(IPsecMarks.out(spi: 15, nodeID: 0) == XFRM.Mark(value: 0xFE00, mask: 0xFFFF_FF00))
        #expect(IPsecMarks.in(nodeID: 0xABCD) == XFRM.Mark(value: 0xABCD_0D00, mask: 0xFFFF_0F00))
        #expect(IPsecMarks.defaultDrop == XFRM.Mark(value: 0x0E00, mask: 0x0F00))
        #expect("\(IPsecMarks.in(nodeID: 1))" == "0x10d00/0xffff0f00")
        let state = IPsecKey(spi: 3, perTunnel: true, algorithms: .aead(name: "rfc4106(gcm(aes))", key: Array(1...20), icvBits: 128))
            .state(source: a, destination: b, mark: IPsecMarks.out(spi: 3, nodeID: 7))
        #expect(state.spi == 3 && state.reqid == 1 && state.esn && state.replayWindow == 1024 && state.mode == .tunnel)
        #expect("\(state)" == "src 10.0.0.1 dst 10.0.0.2 proto esp spi 0x00000003 reqid 1 mode tunnel mark 0x73e00/0xffffff00")
    }
}
