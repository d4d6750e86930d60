import Foundation
import Glibc
import HTTPTransport

/// WireGuard's cross-platform userspace API (what `wg` speaks to wireguard-go): on a unix socket,
/// `set=1` followed by `key=value` lines and a blank line, answered by `errno=N`; `get=1` answered by
/// the device's `key=value` lines, then `errno=N`.
package struct WireGuardUAPI: Sendable {
    package let socketPath: String

    package init(socketPath: String) { self.socketPath = socketPath }

    /// Applies `lines` (e.g. `private_key=<hex>`, `public_key=<hex>` starting a peer's lines).
    package func set(_ lines: [String]) throws {
        let answer = try exchange("set=1\n" + lines.map { $0 + "\n" }.joined() + "\n")
        guard let errno = answer.first(where: { $0.key == "errno" })?.value, errno == "0" else {
            throw WireGuardError("\(socketPath): the device refused the configuration (\(answer.map { "\($0.key)=\($0.value)" }.joined(separator: " ")))")
        }
    }

    /// The device's state, in the order given: device keys first, then each peer's block from its `public_key`.
    package func get() throws -> [(key: String, value: String)] {
        let answer = try exchange("get=1\n\n")
        guard answer.last?.key == "errno", answer.last?.value == "0" else {
            throw WireGuardError("\(socketPath): get failed (\(answer.last.map { "\($0.key)=\($0.value)" } ?? "no answer"))")
        }
        return Array(answer.dropLast())
    }

    private func exchange(_ request: String) throws -> [(key: String, value: String)] {
        let fd: Int32
        switch UnixSocket.connect(path: socketPath, timeout: 5) {
        case .success(let s): fd = s
        case .failure(let e): throw WireGuardError("cannot reach the WireGuard device at \(socketPath): \(e)")
        }
        defer { close(fd) }
        let bytes = Array(request.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw WireGuardError("\(socketPath): write failed: \(String(cString: strerror(errno)))") }
            sent += n
        }
        // The answer ends with a blank line after errno=N.
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !(data.count >= 2 && data.suffix(2) == [10, 10]) {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { break }
            data += buffer[0..<n]
        }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { (line: Substring) -> (key: String, value: String)? in
            let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else { return nil }
            return (String(parts[0]), String(parts[1]))
        }
    }
}

package struct WireGuardError: Error, CustomStringConvertible {
    package var description: String
    package init(_ d: String) { description = d }
}
