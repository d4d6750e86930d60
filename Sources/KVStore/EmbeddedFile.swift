import Diagnostics
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The embedded store's file: JSON with the revision, the keys (values in
/// base64) and the leases with their wall-clock expiry, written to a
/// temporary file, fsynced and renamed over the old one, so a crash leaves
/// either the old or the new content. Watch history is not kept: a watch
/// from a revision before the restart gets `.compacted`.
struct EmbeddedSnapshot: Codable {
    struct Key: Codable {
        var key: String
        var value: Data
        var createRevision: Int64
        var modRevision: Int64
        var version: Int64
        var lease: Int64?
    }

    struct StoredLease: Codable {
        var id: Int64
        var ttlMilliseconds: Int64
        /// Seconds since 1970.
        var expiresAt: Double
    }

    var format = 1
    var revision: Int64
    var nextLeaseID: Int64
    var keys: [Key]
    var leases: [StoredLease]

    init(_ state: EmbeddedState, now: ContinuousClock.Instant = .now, wallNow: Date = Date()) {
        revision = state.revision
        nextLeaseID = state.nextLeaseID
        keys = state.keys(prefix: "").map { key in
            let e = state.entries[key]!
            return Key(key: key, value: e.value, createRevision: e.createRevision, modRevision: e.modRevision,
                       version: e.version, lease: e.lease)
        }
        leases = state.leases.sorted { $0.key < $1.key }.map { id, lease in
            let left = lease.expiresAt - now
            return StoredLease(id: id, ttlMilliseconds: lease.ttl.milliseconds,
                               expiresAt: wallNow.timeIntervalSince1970 + left.seconds)
        }
    }

    func state(now: ContinuousClock.Instant = .now, wallNow: Date = Date()) -> EmbeddedState {
        var state = EmbeddedState()
        state.revision = revision
        state.nextLeaseID = nextLeaseID
        state.oldestKeptRevision = revision + 1
        for lease in leases {
            let left = Duration.milliseconds(Int64(((lease.expiresAt - wallNow.timeIntervalSince1970) * 1000).rounded()))
            state.leases[lease.id] = .init(ttl: .milliseconds(lease.ttlMilliseconds), expiresAt: now + left)
        }
        for k in keys {
            state.entries[k.key] = .init(value: k.value, createRevision: k.createRevision, modRevision: k.modRevision,
                                         version: k.version, lease: k.lease)
            if let lease = k.lease { state.leases[lease]?.keys.insert(k.key) }
        }
        return state
    }

    static func load(path: String) throws -> EmbeddedSnapshot? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        do {
            return try JSONDecoder().decode(EmbeddedSnapshot.self, from: data)
        } catch let error as DecodingError {
            throw FileError(description: "not a kvstore file: \(describe(error))")
        }
    }

    func write(path: String) throws {
        try atomicWrite(encoded(), to: path)
    }

    /// The same JSON `Codable` would write, built by hand: the whole file is
    /// rewritten on every change, and this is several times faster than
    /// JSONEncoder. One key per line.
    func encoded() -> Data {
        var out: [UInt8] = []
        out.reserveCapacity(64 + keys.count * 96)
        func text(_ s: String) { out.append(contentsOf: s.utf8) }
        func string(_ s: String) {
            out.append(UInt8(ascii: "\""))
            for byte in s.utf8 {
                switch byte {
                case UInt8(ascii: "\""): text("\\\"")
                case UInt8(ascii: "\\"): text("\\\\")
                case 0x0a: text("\\n")
                case 0x0d: text("\\r")
                case 0x09: text("\\t")
                case 0..<0x20:
                    let hex = String(byte, radix: 16)
                    text("\\u00" + (hex.count == 1 ? "0" + hex : hex))
                default: out.append(byte)
                }
            }
            out.append(UInt8(ascii: "\""))
        }
        text("{\"format\":\(format),\"revision\":\(revision),\"nextLeaseID\":\(nextLeaseID),\"leases\":[")
        for (i, lease) in leases.enumerated() {
            text(i == 0 ? "\n" : ",\n")
            text("{\"id\":\(lease.id),\"ttlMilliseconds\":\(lease.ttlMilliseconds),\"expiresAt\":\(lease.expiresAt)}")
        }
        text("],\"keys\":[")
        for (i, key) in keys.enumerated() {
            text(i == 0 ? "\n{\"key\":" : ",\n{\"key\":")
            string(key.key)
            text(",\"value\":\"")
            text(key.value.base64EncodedString())
            text("\",\"createRevision\":\(key.createRevision),\"modRevision\":\(key.modRevision),\"version\":\(key.version)")
            if let lease = key.lease { text(",\"lease\":\(lease)") }
            text("}")
        }
        text("\n]}\n")
        return Data(out)
    }
}

struct FileError: Error, CustomStringConvertible {
    let description: String
}

/// A DecodingError in one line: what is wrong, and where.
private func describe(_ error: DecodingError) -> String {
    let context: DecodingError.Context
    switch error {
    case .dataCorrupted(let c), .keyNotFound(_, let c), .typeMismatch(_, let c), .valueNotFound(_, let c): context = c
    @unknown default: return "\(error)"
    }
    let path = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
    return path.isEmpty ? context.debugDescription : "\(path): \(context.debugDescription)"
}

/// Writes `data` to `path` + ".tmp", fsyncs it, renames it over `path` and
/// fsyncs the directory.
func atomicWrite(_ data: Data, to path: String) throws {
    let tmp = path + ".tmp"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw FileError(description: "open \(tmp): \(errnoText(errno, lowercased: true))") }
    var failure: FileError?
    data.withUnsafeBytes { raw in
        var offset = 0
        while offset < raw.count {
            let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                failure = FileError(description: "write \(tmp): \(errnoText(errno, lowercased: true))")
                return
            }
            offset += n
        }
    }
    if failure == nil && fsync(fd) != 0 { failure = FileError(description: "fsync \(tmp): \(errnoText(errno, lowercased: true))") }
    close(fd)
    if let failure {
        unlink(tmp)
        throw failure
    }
    guard rename(tmp, path) == 0 else {
        let text = errnoText(errno, lowercased: true)
        unlink(tmp)
        throw FileError(description: "rename \(tmp) to \(path): \(text)")
    }
    let dir = (path as NSString).deletingLastPathComponent
    let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if dfd >= 0 {
        fsync(dfd)
        close(dfd)
    }
}

extension Duration {
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }

    var milliseconds: Int64 {
        let (s, atto) = components
        return s * 1000 + atto / 1_000_000_000_000_000
    }
}
