import Foundation
import Spawning
import Testing
import TestSupport
@testable import KVStore
#if canImport(Glibc)
import Glibc
#endif

/// Certificates made with openssl in a temporary directory: a CA, another CA, server
/// certificates (good, expired, for another address) and a client certificate.
struct TestPKI: Sendable {
    let directory: String
    var ca: String { "\(directory)/ca.crt" }
    var otherCA: String { "\(directory)/other-ca.crt" }
    var clientCert: String { "\(directory)/client.crt" }
    var clientKey: String { "\(directory)/client.key" }
    var client: EtcdTLSConfig { EtcdTLSConfig(caFile: ca, certFile: clientCert, keyFile: clientKey) }

    /// Makes every file in `directory` (which must exist).
    static func make(in directory: String) throws -> TestPKI {
        let d = directory
        func openssl(_ args: String...) throws { try runChecked(["/usr/bin/openssl"] + args) }
        for ca in ["ca", "other-ca"] {
            try openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "\(d)/\(ca).key", "-out", "\(d)/\(ca).crt",
                        "-days", "2", "-subj", "/CN=kvstore test \(ca)")
        }
        // CSRs: the server's for 127.0.0.1, one for another address and name, the client's.
        try openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "\(d)/server.key", "-out", "\(d)/server.csr",
                    "-subj", "/CN=etcd", "-addext", "subjectAltName=IP:127.0.0.1")
        try openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "\(d)/elsewhere.key", "-out", "\(d)/elsewhere.csr",
                    "-subj", "/CN=etcd-elsewhere", "-addext", "subjectAltName=IP:10.9.9.9,DNS:etcd.elsewhere.test")
        try openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "\(d)/client.key", "-out", "\(d)/client.csr",
                    "-subj", "/CN=cilium-agent")
        for name in ["server", "elsewhere", "client"] {
            try openssl("x509", "-req", "-in", "\(d)/\(name).csr", "-CA", "\(d)/ca.crt", "-CAkey", "\(d)/ca.key",
                        "-CAcreateserial", "-days", "2", "-copy_extensions", "copy", "-out", "\(d)/\(name).crt")
        }
        // The expired one: `openssl ca` sets the dates (OpenSSL 3.0's x509 cannot).
        try """
        [ca]
        default_ca = d
        [d]
        database = \(d)/index.txt
        new_certs_dir = \(d)
        serial = \(d)/ca.srl
        default_md = sha256
        policy = p
        copy_extensions = copy
        unique_subject = no
        [p]
        commonName = supplied
        """.write(toFile: "\(d)/ca.cnf", atomically: true, encoding: .utf8)
        try "".write(toFile: "\(d)/index.txt", atomically: true, encoding: .utf8)
        try openssl("ca", "-batch", "-config", "\(d)/ca.cnf", "-cert", "\(d)/ca.crt", "-keyfile", "\(d)/ca.key",
                    "-in", "\(d)/server.csr", "-out", "\(d)/expired.crt", "-notext",
                    "-startdate", "20200101000000Z", "-enddate", "20200102000000Z")
        return TestPKI(directory: d)
    }
}

/// An etcd serving https with client certificate authentication on 127.0.0.1, stopped by PID.
final class TLSEtcd: Sendable {
    let url: String
    let directory: String
    let pid: pid_t

    /// Starts etcd with `serverCert` (and its `serverKey`); waits until it accepts connections.
    static func start(pki: TestPKI, serverCert: String, serverKey: String) async throws -> TLSEtcd {
        let port = try EtcdServer.freePort(), peerPort = try EtcdServer.freePort()
        let directory = "\(pki.directory)/etcd-\(port)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let url = "https://127.0.0.1:\(port)"
        let peer = "http://127.0.0.1:\(peerPort)"
        let args = ["/usr/bin/etcd", "--name", "default", "--data-dir", "\(directory)/data",
                    "--listen-client-urls", url, "--advertise-client-urls", url,
                    "--cert-file", serverCert, "--key-file", serverKey,
                    "--trusted-ca-file", pki.ca, "--client-cert-auth",
                    "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                    "--initial-cluster", "default=\(peer)"]
        let child = try ChildProcess.spawn(args, output: "\(directory)/etcd.log")
        let server = TLSEtcd(url: url, directory: directory, pid: child)
        // Up when something other than "connection refused" answers (the certificates may be bad on purpose).
        let probe = try EtcdKVStore(endpoints: [url], timeout: .seconds(1), tls: pki.client)
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let health = await probe.status()
            if !health.message.contains("connection refused") { return server }
            var status: Int32 = 0
            if waitpid(child, &status, WNOHANG) == child {
                throw TestFailure("etcd exited (status \(status)):\n\(server.logTail())")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        server.stop()
        throw TestFailure("etcd did not listen on \(url) within 30 s:\n\(server.logTail())")
    }

    private init(url: String, directory: String, pid: pid_t) {
        self.url = url
        self.directory = directory
        self.pid = pid
    }

    func logTail() -> String {
        let text = (try? String(contentsOfFile: "\(directory)/etcd.log", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(15).joined(separator: "\n")
    }

    /// SIGTERM, SIGKILL after 5 s; reaps it and removes its data.
    func stop() {
        ChildProcess.terminate(pid)
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Runs `body` with fresh certificates in a temporary directory, removed afterwards (also on failure).
func withPKI<R>(_ body: (TestPKI) async throws -> R) async throws -> R {
    try await withTemporaryDirectory { dir in try await body(try TestPKI.make(in: dir)) }
}

/// Runs `body` with an https etcd presenting `cert`/`key` (default: the good server certificate), stopped afterwards.
func withTLSEtcd<R>(_ pki: TestPKI, cert: String = "server", key: String = "server",
                    _ body: (TLSEtcd) async throws -> R) async throws -> R {
    let server = try await TLSEtcd.start(pki: pki, serverCert: "\(pki.directory)/\(cert).crt",
                                         serverKey: "\(pki.directory)/\(key).key")
    do {
        let result = try await body(server)
        server.stop()
        return result
    } catch {
        server.stop()
        throw error
    }
}
