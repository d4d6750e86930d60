import Foundation

// JSON shapes of etcd's v3 gateway (grpc-gateway): keys and values are
// base64, int64 fields are JSON strings, fields with default values are
// left out (a failed txn has no "succeeded", an empty range no "kvs").

/// An int64 that arrives as a string (or, leniently, a number).
struct EtcdInt: Decodable, Sendable {
    var value: Int64

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self), let v = Int64(s) {
            value = v
        } else {
            value = try c.decode(Int64.self)
        }
    }
}

/// A uint64 (member and cluster IDs) that arrives as a string.
struct EtcdUInt: Decodable, Sendable {
    var value: UInt64

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self), let v = UInt64(s) {
            value = v
        } else {
            value = try c.decode(UInt64.self)
        }
    }
}

struct EtcdHeader: Decodable, Sendable {
    var revision: EtcdInt?
    var memberID: EtcdUInt?

    enum CodingKeys: String, CodingKey {
        case revision
        case memberID = "member_id"
    }
}

struct EtcdKV: Decodable, Sendable {
    var key: String
    var value: String?
    var createRevision: EtcdInt?
    var modRevision: EtcdInt?
    var lease: EtcdInt?

    enum CodingKeys: String, CodingKey {
        case key, value, lease
        case createRevision = "create_revision"
        case modRevision = "mod_revision"
    }

    func pair() throws -> KVPair {
        guard let keyData = Data(base64Encoded: key) else { throw EtcdWireError.badBase64 }
        var valueData = Data()
        if let value {
            guard let decoded = Data(base64Encoded: value) else { throw EtcdWireError.badBase64 }
            valueData = decoded
        }
        let leaseID = lease?.value ?? 0
        return KVPair(key: String(decoding: keyData, as: UTF8.self), value: valueData,
                      modRevision: modRevision?.value ?? 0, createRevision: createRevision?.value ?? 0,
                      lease: leaseID == 0 ? nil : leaseID)
    }
}

enum EtcdWireError: Error { case badBase64 }

struct EtcdRangeResponse: Decodable, Sendable {
    var header: EtcdHeader?
    var kvs: [EtcdKV]?
}

struct EtcdHeaderResponse: Decodable, Sendable {
    var header: EtcdHeader?
}

struct EtcdDeleteResponse: Decodable, Sendable {
    var header: EtcdHeader?
    var deleted: EtcdInt?
}

struct EtcdTxnResponse: Decodable, Sendable {
    var header: EtcdHeader?
    var succeeded: Bool?
}

struct EtcdLeaseGrantResponse: Decodable, Sendable {
    var id: EtcdInt?
    var ttl: EtcdInt?
    var error: String?

    enum CodingKeys: String, CodingKey {
        case id = "ID", ttl = "TTL", error
    }
}

/// /v3/lease/keepalive is a stream: each answer is wrapped in "result".
struct EtcdKeepAliveResponse: Decodable, Sendable {
    var result: EtcdLeaseGrantResponse?
    var error: EtcdStreamError?
}

struct EtcdStatusResponse: Decodable, Sendable {
    var header: EtcdHeader?
    var version: String?
    var leader: EtcdUInt?
}

/// The gateway's error body for unary calls: {"error","message","code"}.
struct EtcdErrorBody: Decodable, Sendable {
    var error: String?
    var message: String?
    var code: Int?
}

/// Errors inside a stream: {"error":{"grpc_code","http_code","message"}}.
struct EtcdStreamError: Decodable, Sendable {
    var grpcCode: Int?
    var httpCode: Int?
    var message: String?

    enum CodingKeys: String, CodingKey {
        case message
        case grpcCode = "grpc_code"
        case httpCode = "http_code"
    }
}

struct EtcdWatchMessage: Decodable, Sendable {
    var result: EtcdWatchResult?
    var error: EtcdStreamError?
}

struct EtcdWatchResult: Decodable, Sendable {
    var header: EtcdHeader?
    var created: Bool?
    var canceled: Bool?
    var compactRevision: EtcdInt?
    var cancelReason: String?
    var events: [EtcdWatchEvent]?

    enum CodingKeys: String, CodingKey {
        case header, created, canceled, events
        case compactRevision = "compact_revision"
        case cancelReason = "cancel_reason"
    }
}

struct EtcdWatchEvent: Decodable, Sendable {
    var type: String?
    var kv: EtcdKV

    func event() throws -> KVEvent {
        let pair = try kv.pair()
        return type == "DELETE" ? .delete(key: pair.key, revision: pair.modRevision) : .put(pair)
    }
}

/// Request bodies.
enum EtcdRequest {
    static func base64(_ s: String) -> String { Data(s.utf8).base64EncodedString() }

    /// range_end for "every key starting with prefix": the prefix with its
    /// last byte below 0xff incremented; "\0" (all keys) for an empty prefix.
    static func rangeEnd(prefix: String) -> String {
        var bytes = Array(prefix.utf8)
        while let last = bytes.last {
            if last < 0xff {
                bytes[bytes.count - 1] = last + 1
                return Data(bytes).base64EncodedString()
            }
            bytes.removeLast()
        }
        return Data([0]).base64EncodedString()
    }

    static func prefixRange(_ prefix: String) -> [String: String] {
        let key = prefix.isEmpty ? Data([0]).base64EncodedString() : base64(prefix)
        return ["key": key, "range_end": rangeEnd(prefix: prefix)]
    }

    static func put(_ key: String, _ value: Data, lease: Lease?) -> [String: String] {
        var body = ["key": base64(key), "value": value.base64EncodedString()]
        if let lease { body["lease"] = String(lease.id) }
        return body
    }

    static func json(_ object: [String: Any]) -> Data {
        // Only strings, numbers, bools, arrays and dictionaries go in.
        (try? JSONSerialization.data(withJSONObject: object)) ?? Data("{}".utf8)
    }
}
