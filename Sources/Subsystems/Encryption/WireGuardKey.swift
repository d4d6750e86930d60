import Diagnostics
import Foundation
import Glibc

/// The node's WireGuard key pair. The private key is 32 raw bytes in `<agent.stateDir>/cilium_wg0.key`
/// (mode 0600), made on the first start and reused afterwards; the public key is derived from it.
package struct WireGuardKey: Equatable, Sendable {
    package var privateKey: [UInt8]
    package var publicKey: [UInt8] { X25519.publicKey(privateKey) }
    package var publicKeyBase64: String { Data(publicKey).base64EncodedString() }

    package init(privateKey: [UInt8]) {
        self.privateKey = X25519.clamp(privateKey)
    }

    /// A new key from the system's random source.
    package static func generate() -> WireGuardKey {
        var g = SystemRandomNumberGenerator()
        return WireGuardKey(privateKey: (0..<32).map { _ in UInt8.random(in: 0...255, using: &g) })
    }

    /// Hex, as WireGuard's UAPI writes keys.
    package static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    /// The bytes of UAPI hex (nil when it is not hex).
    package static func bytes(hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        for i in stride(from: 0, to: digits.count, by: 2) {
            guard let b = UInt8(String(decoding: digits[i...i + 1], as: UTF8.self), radix: 16) else { return nil }
            out.append(b)
        }
        return out
    }

    /// The key in `path`, or a new one written there. `note` says why a new key was made when one was expected
    /// (the file was corrupt); nil when the file was read, or did not exist.
    package static func loadOrCreate(path: String) throws -> (key: WireGuardKey, note: String?) {
        var note: String?
        if let data = FileManager.default.contents(atPath: path) {
            if data.count == 32 {
                var st = stat()
                if stat(path, &st) == 0, st.st_mode & 0o077 != 0 { _ = chmod(path, 0o600) }
                return (WireGuardKey(privateKey: [UInt8](data)), nil)
            }
            note = "\(path) holds \(data.count) bytes, not a 32-byte key: a new key pair was made (peers learn it through the cluster state)"
        }
        let key = generate()
        try write(key, to: path)
        return (key, note)
    }

    /// Writes the private key with mode 0600, atomically (a crash leaves the old file or the new one).
    package static func write(_ key: WireGuardKey, to path: String) throws {
        let tmp = path + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw KeyFileError("cannot write \(tmp): \(errnoText(errno))") }
        _ = fchmod(fd, 0o600)
        let written = key.privateKey.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, 32) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == 32, synced, rename(tmp, path) == 0 else {
            unlink(tmp)
            throw KeyFileError("cannot write \(path): \(errnoText(errno))")
        }
    }
}

package struct KeyFileError: Error, CustomStringConvertible {
    package var description: String
    init(_ d: String) { description = d }
}
