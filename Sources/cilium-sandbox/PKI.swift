import Foundation
import Glibc

/// The sandbox's certificates for etcd over TLS, made with openssl under `<sandbox dir>/pki/`:
///   ca.crt, ca.key              the sandbox's own CA (nothing else trusts it)
///   etcd<i>.crt, etcd<i>.key    cluster i's etcd server: SAN IP:172.30.0.x and DNS:etcd.cluster<i>.mesh.cilium.io
///   client.crt, client.key      the client certificate every agent presents (etcd runs with --client-cert-auth)
/// Keys are 0600, the directory 0700; `down` removes it with the sandbox's directory.
extension SandboxState.PKI {
    static func make(sandbox: String, clusters: Int) throws -> SandboxState.PKI {
        let dir = SandboxState.directory(sandbox) + "/pki"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var cnf = """
            # Written by cilium-sandbox for the certificates of sandbox \(sandbox).
            [req]
            distinguished_name = dn
            prompt = no
            [dn]
            CN = cilium-sandbox
            [ca_ext]
            basicConstraints = critical,CA:TRUE
            keyUsage = critical,keyCertSign,cRLSign
            subjectKeyIdentifier = hash
            [client_ext]
            basicConstraints = critical,CA:FALSE
            keyUsage = critical,digitalSignature
            extendedKeyUsage = clientAuth
            authorityKeyIdentifier = keyid

            """
        for i in 1...clusters {
            let address = clusters == 1 ? Topology.etcdAddress : Topology.etcdAddress(cluster: i)
            // clientAuth too: etcd's own gateway dials etcd with the server certificate.
            cnf += """
                [server\(i)_ext]
                basicConstraints = critical,CA:FALSE
                keyUsage = critical,digitalSignature,keyEncipherment
                extendedKeyUsage = serverAuth,clientAuth
                authorityKeyIdentifier = keyid
                subjectAltName = IP:\(address),DNS:\(Topology.etcdServerName(cluster: i)),IP:127.0.0.1,DNS:localhost

                """
        }
        let config = dir + "/openssl.cnf"
        try cnf.write(toFile: config, atomically: true, encoding: .utf8)
        let newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        try openssl(["req", "-x509", "-new", "-config", config, "-extensions", "ca_ext"] + newKey
                    + ["-keyout", dir + "/ca.key", "-out", dir + "/ca.crt", "-days", "365",
                       "-subj", "/O=cilium-sandbox/CN=cilium-sandbox \(sandbox) CA"])
        func issue(_ base: String, subject: String, extensions: String) throws {
            try openssl(["req", "-new", "-config", config] + newKey
                        + ["-keyout", "\(dir)/\(base).key", "-out", "\(dir)/\(base).csr", "-subj", subject])
            try openssl(["x509", "-req", "-in", "\(dir)/\(base).csr", "-CA", dir + "/ca.crt", "-CAkey", dir + "/ca.key",
                         "-CAcreateserial", "-CAserial", dir + "/ca.srl", "-days", "365",
                         "-extfile", config, "-extensions", extensions, "-out", "\(dir)/\(base).crt"])
            try? FileManager.default.removeItem(atPath: "\(dir)/\(base).csr")
            chmod("\(dir)/\(base).key", 0o600)
        }
        for i in 1...clusters {
            try issue("etcd\(i)", subject: "/O=cilium-sandbox/CN=\(Topology.etcdServerName(cluster: i))", extensions: "server\(i)_ext")
        }
        try issue("client", subject: "/O=cilium-sandbox/CN=cilium-sandbox-client", extensions: "client_ext")
        chmod(dir + "/ca.key", 0o600)
        return SandboxState.PKI(directory: dir, caFile: dir + "/ca.crt", certFile: dir + "/client.crt", keyFile: dir + "/client.key")
    }

    /// Runs openssl quietly; its output only when it fails.
    private static func openssl(_ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        do { try p.run() } catch {
            throw SandboxError("cannot run /usr/bin/openssl (apt-get install openssl): \(error)")
        }
        let text = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw SandboxError("openssl \(args.prefix(2).joined(separator: " ")) failed: \(String(decoding: text, as: UTF8.self).suffix(800))")
        }
    }
}
