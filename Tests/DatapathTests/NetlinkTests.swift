// Tests of the rtnetlink client and namespace helpers. They need root and run on a shared machine, so:
// every namespace and link has a unique "nlt<hex>" name, everything is created inside test namespaces
// (the root namespace is only read), and cleanup runs in `defer`, also when a test fails.

import Datapath
import LinuxNet
import Foundation
import Testing

private typealias IP = Netlink.IPv4Address
private typealias Prefix = Netlink.IPv4Prefix
private typealias MAC = Netlink.MACAddress

private func ip(_ text: String) -> IP { IP(text)! }
private func prefix(_ text: String) -> Prefix { Prefix(text)! }
private func mac(_ text: String) -> MAC { MAC(text)! }

/// "nlt" + 6 random hex digits: 9 characters, leaving 6 for a suffix within IFNAMSIZ-1 (15).
private func uniqueName() -> String { "nlt" + String(format: "%06x", UInt32.random(in: 0..<0x100_0000)) }

/// Runs a command and returns its stdout; throws with stderr if it fails.
@discardableResult
private func run(_ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let output = out.fileHandleForReading.readDataToEndOfFile()
    let errors = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw CommandFailed(command: arguments.joined(separator: " "), status: process.terminationStatus,
                            stderr: String(decoding: errors, as: UTF8.self))
    }
    return String(decoding: output, as: UTF8.self)
}

private struct CommandFailed: Error, CustomStringConvertible {
    var command: String, status: Int32, stderr: String
    var description: String { "\(command) exited \(status): \(stderr)" }
}

/// `ip -n NS -j ARGS` parsed as a JSON array of objects.
private func ipJSON(_ namespace: NetworkNamespace, _ arguments: String...) throws -> [[String: Any]] {
    let text = try run(["ip", "-n", namespace.name!, "-j"] + arguments)
    return (try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]]) ?? []
}

/// A UDP socket opened inside `namespace` (it stays there), bound to `address` (any address if nil).
private func udpSocket(in namespace: NetworkNamespace, boundTo address: String?, port: UInt16) throws -> Int32 {
    try namespace.run {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno)!) }
        var local = socketAddress(address ?? "0.0.0.0", port)
        let rc = withUnsafePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { close(fd); throw POSIXError(.init(rawValue: errno)!) }
        return fd
    }
}

private func socketAddress(_ address: String, _ port: UInt16) -> sockaddr_in {
    var sin = sockaddr_in()
    sin.sin_family = sa_family_t(AF_INET)
    sin.sin_port = port.bigEndian
    sin.sin_addr.s_addr = ip(address).value.bigEndian
    return sin
}

private func waitReadable(_ fd: Int32) -> Bool {
    var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    return poll(&entry, 1, 1000) == 1
}

/// The ping of these tests (there is no ping binary on these machines): a UDP datagram from `source`
/// to `address` in `target`, echoed back. True if the echo arrives within a second each way.
private func udpRoundTrip(from source: NetworkNamespace, to target: NetworkNamespace, _ address: String) throws -> Bool {
    let port = UInt16.random(in: 20_000..<60_000)
    let server = try udpSocket(in: target, boundTo: address, port: port)
    defer { close(server) }
    let client = try udpSocket(in: source, boundTo: nil, port: 0)
    defer { close(client) }
    var destination = socketAddress(address, port)
    let payload: [UInt8] = Array("nlt".utf8)
    let sent = withUnsafePointer(to: &destination) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            sendto(client, payload, payload.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard sent == payload.count, waitReadable(server) else { return false }
    var peer = sockaddr_storage()
    var peerLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
    var buffer = [UInt8](repeating: 0, count: 64)
    let received = withUnsafeMutablePointer(to: &peer) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(server, &buffer, buffer.count, 0, $0, &peerLength) }
    }
    guard received == payload.count else { return false }
    let echoed = withUnsafePointer(to: &peer) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(server, buffer, received, 0, $0, peerLength) }
    }
    guard echoed == received, waitReadable(client) else { return false }
    return recv(client, &buffer, buffer.count, 0) == payload.count
}

/// Creates `count` namespaces, runs `body`, and deletes them whatever happens.
private func withNamespaces(_ count: Int, _ body: ([NetworkNamespace]) throws -> Void) throws {
    let base = uniqueName()
    var created: [NetworkNamespace] = []
    defer { for namespace in created { try? namespace.delete() } }
    for i in 0..<count { created.append(try NetworkNamespace.create(named: "\(base)-\(i)")) }
    try body(created)
}

/// Expects `body` to fail with a NetlinkError of `code`, and returns it for further checks.
@discardableResult
private func expectNetlinkError(_ code: Int32, sourceLocation: SourceLocation = #_sourceLocation,
                                _ body: () throws -> Void) -> NetlinkError? {
    do {
        try body()
        Issue.record("expected errno \(code), got success", sourceLocation: sourceLocation)
    } catch let error as NetlinkError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected NetlinkError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

@Suite(.serialized)
struct NetlinkTests {
    // MARK: Value types

    @Test func parsesAndFormatsAddresses() {
        #expect(IP("10.250.0.1")?.description == "10.250.0.1")
        #expect(IP("10.250.0.1")?.bytes == [10, 250, 0, 1])
        for bad in ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "+1.2.3.4", "a.b.c.d", "1..2.3"] { #expect(IP(bad) == nil, "\(bad)") }
        #expect(Prefix("10.250.1.7/24")?.network.description == "10.250.1.0/24")
        #expect(Prefix("10.250.1.7")?.length == 32)
        #expect(Prefix("0.0.0.0/0") == Prefix.default)
        for bad in ["10.0.0.0/33", "10.0.0.0/", "10.0.0.0/+1", "/8"] { #expect(Prefix(bad) == nil, "\(bad)") }
        #expect(MAC("02:00:0A:fa:00:01")?.description == "02:00:0a:fa:00:01")
        for bad in ["02:00:0a:fa:00", "02:00:0a:fa:00:1", "02:00:0a:fa:00:+1", "zz:00:00:00:00:00"] { #expect(MAC(bad) == nil, "\(bad)") }
    }

    // MARK: Namespaces

    @Test func namespaceLifecycle() throws {
        let name = uniqueName()
        let namespace = try NetworkNamespace.create(named: name)
        var deleted = false
        defer { if !deleted { try? namespace.delete() } }

        #expect(namespace.path == "/run/netns/\(name)")
        #expect(namespace.name == name)
        #expect(namespace.exists)
        #expect(try run(["ip", "netns", "list"]).contains(name))
        #expect(try namespace.inode() != NetworkNamespace(path: "/proc/self/ns/net").inode())
        let fd = try namespace.open()
        #expect(fd >= 0)
        close(fd)

        let duplicate = #expect(throws: NetworkNamespaceError.self) { try NetworkNamespace.create(named: name) }
        #expect(duplicate?.code == EEXIST)
        #expect(duplicate?.description == "create netns \(name): File exists")
        #expect(namespace.exists, "a failed duplicate create must not remove the existing namespace")

        try namespace.delete()
        deleted = true
        #expect(!namespace.exists)
        #expect(try !run(["ip", "netns", "list"]).contains(name))
        let missing = #expect(throws: NetworkNamespaceError.self) { try namespace.delete() }
        #expect(missing?.code == ENOENT)
        #expect(missing?.description == "delete netns \(name): No such file or directory")
    }

    @Test func rejectsBadNamespaceNames() throws {
        for bad in ["", ".", "..", "a/b", "../etc", String(repeating: "x", count: 300)] {
            let error = #expect(throws: NetworkNamespaceError.self) { try NetworkNamespace.create(named: bad) }
            #expect(error?.code == EINVAL)
        }
        let missing = try NetworkNamespace(named: uniqueName() + "-missing")
        #expect(!missing.exists)
        let error = #expect(throws: NetworkNamespaceError.self) { try Netlink(namespace: missing) }
        #expect(error?.code == ENOENT)
        #expect(error?.description.hasPrefix("open netns \(missing.name!)") == true)
    }

    @Test func runsCodeInsideNamespaceWithoutMovingTheCaller() async throws {
        let name = uniqueName()
        let namespace = try NetworkNamespace.create(named: name)
        defer { try? namespace.delete() }
        let target = try namespace.inode()
        let threadNamespace = NetworkNamespace(path: "/proc/thread-self/ns/net")
        let before = try threadNamespace.inode()

        #expect(try namespace.run { try threadNamespace.inode() } == target)
        #expect(try await namespace.runAsync { try threadNamespace.inode() } == target)
        #expect(try threadNamespace.inode() == before)
        #expect(try NetworkNamespace(path: "/proc/self/ns/net").inode() == before)

        // Errors thrown inside come out unchanged.
        struct Marker: Error {}
        #expect(throws: Marker.self) { try namespace.run { throw Marker() } }
        await #expect(throws: Marker.self) { try await namespace.runAsync { () throws -> Int in throw Marker() } }

        // A fresh namespace has only a (down) loopback.
        let netlink = try Netlink(namespace: namespace)
        let links = try netlink.links()
        #expect(links.map(\.name) == ["lo"])
        #expect(links.first?.isUp == false)
    }

    // MARK: Links, addresses, routes, neighbours

    @Test func readsRootNamespaceWithoutChangingIt() throws {
        let netlink = try Netlink()
        let lo = try #require(try netlink.link("lo"))
        #expect(lo.index == 1)
        #expect(try netlink.link(.index(1))?.name == "lo")
        #expect(try netlink.links().contains(lo))
        #expect(try netlink.link(.name(uniqueName())) == nil)
        #expect(try netlink.addresses(of: "lo").contains { $0.prefix == prefix("127.0.0.1/8") })
    }

    @Test func vethBetweenTwoNamespaces() throws {
        try withNamespaces(2) { namespaces in
            let (nsA, nsB) = (namespaces[0], namespaces[1])
            let nlA = try Netlink(namespace: nsA), nlB = try Netlink(namespace: nsB)
            let base = uniqueName()
            let a = Netlink.LinkRef.name(base + "a"), b = Netlink.LinkRef.name(base + "b")

            // The peer is created directly in B.
            try nsB.withFD { try nlA.createVeth(name: base + "a", peerName: base + "b", peerNamespaceFD: $0, mtu: 1400) }
            let linkA = try #require(try nlA.link(a))
            let linkB = try #require(try nlB.link(b))
            #expect(try nlA.link(b) == nil)
            #expect(linkA.kind == "veth" && linkB.kind == "veth")
            #expect(linkA.linkIndex == linkB.index && linkB.linkIndex == linkA.index)
            #expect(linkA.mtu == 1400 && linkB.mtu == 1400)
            #expect(!linkA.isUp)
            #expect(try nlA.links().map(\.name) == ["lo", base + "a"])

            // MTU, MAC, up.
            let macA = mac("02:00:0a:fa:01:01")
            try nlA.setLinkMTU(a, mtu: 1450)
            try nlA.setLinkMAC(.index(linkA.index), mac: macA)
            let toBringUp: [(Netlink, Netlink.LinkRef)] = [(nlA, a), (nlB, b), (nlA, "lo"), (nlB, "lo")]
            for (netlink, link) in toBringUp { try netlink.setLinkUp(link) }
            let upA = try #require(try nlA.link(a))
            #expect(upA.mtu == 1450 && upA.mac == macA && upA.isUp && upA.hasCarrier)
            let ipLink = try #require(try ipJSON(nsA, "link", "show", "dev", base + "a").first)
            #expect(ipLink["mtu"] as? Int == 1450)
            #expect(ipLink["address"] as? String == macA.description)
            #expect((ipLink["flags"] as? [String])?.contains("UP") == true)

            // Addresses.
            try nlA.addAddress(prefix("10.250.1.1/24"), to: a)
            try nlB.addAddress(prefix("10.250.1.2/24"), to: b)
            try nlB.addAddress(prefix("10.250.2.1/32"), to: "lo")     // reachable from A only through a route
            #expect(try nlA.addresses(of: a).map(\.prefix) == [prefix("10.250.1.1/24")])
            let ipAddr = try #require(try ipJSON(nsA, "addr", "show", "dev", base + "a").first)
            let ipv4 = (ipAddr["addr_info"] as? [[String: Any]] ?? []).filter { $0["family"] as? String == "inet" }
            #expect(ipv4.count == 1)
            #expect(ipv4.first?["local"] as? String == "10.250.1.1" && ipv4.first?["prefixlen"] as? Int == 24)
            expectNetlinkError(EEXIST) { try nlA.addAddress(prefix("10.250.1.1/24"), to: a) }
            #expect(try udpRoundTrip(from: nsA, to: nsB, "10.250.1.2"))

            // A route through a gateway.
            let viaB = Netlink.Route(destination: prefix("10.250.2.0/24"), gateway: ip("10.250.1.2"), outputIndex: linkA.index)
            #expect(viaB.scope == .universe)
            try nlA.addRoute(viaB)
            let listed = try #require(try nlA.routes().first { $0.destination == viaB.destination })
            #expect(listed.gateway == viaB.gateway && listed.outputIndex == linkA.index && listed.protocolNumber == 3)
            let ipRoute = try #require(try ipJSON(nsA, "route", "show", "10.250.2.0/24").first)
            #expect(ipRoute["gateway"] as? String == "10.250.1.2" && ipRoute["dev"] as? String == base + "a")
            #expect(try udpRoundTrip(from: nsA, to: nsB, "10.250.2.1"))
            expectNetlinkError(EEXIST) { try nlA.addRoute(viaB) }

            // A scope-link route with a preferred source, then replaced by one through the gateway.
            let direct = Netlink.Route(destination: prefix("10.250.3.0/24"), outputIndex: linkA.index, source: ip("10.250.1.1"))
            try nlA.addRoute(direct)
            let ipDirect = try #require(try ipJSON(nsA, "route", "show", "10.250.3.0/24").first)
            #expect(ipDirect["scope"] as? String == "link" && ipDirect["prefsrc"] as? String == "10.250.1.1")
            try nlA.replaceRoute(Netlink.Route(destination: prefix("10.250.3.0/24"), gateway: ip("10.250.1.2"), outputIndex: linkA.index))
            let replaced = try nlA.routes().filter { $0.destination == direct.destination }
            #expect(replaced.count == 1 && replaced.first?.gateway == ip("10.250.1.2") && replaced.first?.source == nil)

            // A gateway that is not on any connected subnet: the kernel's reason is kept.
            let unreachable = expectNetlinkError(ENETUNREACH) {
                try nlA.addRoute(Netlink.Route(destination: prefix("10.250.4.0/24"), gateway: ip("10.250.9.9")))
            }
            #expect(unreachable?.description.hasPrefix("add route 10.250.4.0/24 via 10.250.9.9: Network is unreachable") == true)

            try nlA.deleteRoute(viaB)
            try nlA.deleteRoute(Netlink.Route(destination: prefix("10.250.3.0/24")))
            #expect(try !nlA.routes().contains { $0.destination == viaB.destination || $0.destination == direct.destination })
            #expect(try ipJSON(nsA, "route", "show", "10.250.3.0/24").isEmpty)
            expectNetlinkError(ESRCH) { try nlA.deleteRoute(viaB) }
            #expect(try !udpRoundTrip(from: nsA, to: nsB, "10.250.2.1"))

            // A permanent neighbour entry.
            let neighborMAC = mac("02:00:0a:fa:01:77")
            try nlA.addNeighbor(ip("10.250.1.77"), mac: neighborMAC, on: a)
            let neighbor = try #require(try nlA.neighbors(of: a).first { $0.address == ip("10.250.1.77") })
            #expect(neighbor.mac == neighborMAC && neighbor.isPermanent && neighbor.linkIndex == linkA.index)
            let ipNeigh = try #require(try ipJSON(nsA, "neigh", "show", "dev", base + "a").first { $0["dst"] as? String == "10.250.1.77" })
            #expect(ipNeigh["lladdr"] as? String == neighborMAC.description)
            #expect((ipNeigh["state"] as? [String]) == ["PERMANENT"])
            expectNetlinkError(EEXIST) { try nlA.addNeighbor(ip("10.250.1.77"), mac: neighborMAC, on: a) }
            try nlA.replaceNeighbor(ip("10.250.1.77"), mac: mac("02:00:0a:fa:01:78"), on: a)
            #expect(try nlA.neighbors(of: a).first { $0.address == ip("10.250.1.77") }?.mac == mac("02:00:0a:fa:01:78"))
            try nlA.deleteNeighbor(ip("10.250.1.77"), on: a)
            #expect(try !nlA.neighbors(of: a).contains { $0.address == ip("10.250.1.77") })

            // Address removal, link down, delete (which removes both ends).
            try nlA.deleteAddress(prefix("10.250.1.1/24"), from: a)
            #expect(try nlA.addresses(of: a).isEmpty)
            expectNetlinkError(EADDRNOTAVAIL) { try nlA.deleteAddress(prefix("10.250.1.1/24"), from: a) }
            try nlA.setLinkDown(a)
            #expect(try nlA.link(a)?.isUp == false)
            try nlA.deleteLink(a)
            #expect(try nlA.link(a) == nil)
            #expect(try nlB.link(b) == nil)
        }
    }

    @Test func errorsNameTheOperation() throws {
        try withNamespaces(1) { namespaces in
            let netlink = try Netlink(namespace: namespaces[0])
            let base = uniqueName()
            try netlink.createVeth(name: base + "x", peerName: base + "y")

            let duplicate = expectNetlinkError(EEXIST) { try netlink.createVeth(name: base + "x", peerName: base + "z") }
            #expect(duplicate?.description.hasPrefix("create veth \(base)x <-> \(base)z: File exists") == true)

            let missing = Netlink.LinkRef.name(base + "q")
            let deleteMissing = expectNetlinkError(ENODEV) { try netlink.deleteLink(missing) }
            #expect(deleteMissing?.description == "delete link \(base)q: No such device")
            expectNetlinkError(ENODEV) { try netlink.setLinkUp(missing) }
            let addMissing = expectNetlinkError(ENODEV) { try netlink.addAddress(prefix("10.250.1.1/24"), to: missing) }
            #expect(addMissing?.description == "add address 10.250.1.1/24 to \(base)q: No such device")
            expectNetlinkError(ENODEV) { try netlink.renameLink(missing, to: base + "r") }
            expectNetlinkError(ENODEV) { try netlink.deleteLink(.index(99_999)) }
            // Interface names are limited to 15 bytes (the kernel's policy check answers ERANGE).
            expectNetlinkError(ERANGE) { try netlink.createBridge(name: base + "toolong") }
        }
    }

    @Test func renamesAndMovesLinks() throws {
        try withNamespaces(2) { namespaces in
            let nlA = try Netlink(namespace: namespaces[0]), nlB = try Netlink(namespace: namespaces[1])
            let base = uniqueName()
            // Both ends start in A (no link is ever created in the root namespace).
            try nlA.createVeth(name: base + "x", peerName: base + "y")
            let x = try #require(try nlA.link(.name(base + "x")))

            try nlA.renameLink(.name(base + "x"), to: base + "r")
            #expect(try nlA.link(.index(x.index))?.name == base + "r")
            #expect(try nlA.link(.name(base + "x")) == nil)

            try namespaces[1].withFD { try nlA.moveLink(.name(base + "y"), toNamespaceFD: $0) }
            #expect(try nlA.link(.name(base + "y")) == nil)
            #expect(try nlB.link(.name(base + "y"))?.kind == "veth")
            #expect(try ipJSON(namespaces[1], "link", "show", "dev", base + "y").count == 1)

            try nlA.deleteLink(.name(base + "r"))
            #expect(try nlB.link(.name(base + "y")) == nil)
        }
    }

    @Test func bridgeWithEnslavedLink() throws {
        try withNamespaces(1) { namespaces in
            let netlink = try Netlink(namespace: namespaces[0])
            let base = uniqueName()
            let bridge = Netlink.LinkRef.name(base + "br"), port = Netlink.LinkRef.name(base + "p")
            try netlink.createBridge(name: base + "br")
            try netlink.createVeth(name: base + "p", peerName: base + "q")
            let bridgeLink = try #require(try netlink.link(bridge))
            #expect(bridgeLink.kind == "bridge")

            try netlink.setLinkMaster(port, master: bridge)
            #expect(try netlink.link(port)?.masterIndex == bridgeLink.index)
            let ipPort = try #require(try ipJSON(namespaces[0], "link", "show", "dev", base + "p").first)
            #expect(ipPort["master"] as? String == base + "br")

            try netlink.setLinkMaster(port, master: nil)
            #expect(try netlink.link(port)?.masterIndex == nil)
            expectNetlinkError(ENODEV) { try netlink.setLinkMaster(port, master: .name(base + "nope")) }
        }
    }

    @Test func vxlanInExternalMode() throws {
        try withNamespaces(1) { namespaces in
            let netlink = try Netlink(namespace: namespaces[0])
            let name = uniqueName() + "vx"
            try netlink.createVXLAN(name: name)
            try netlink.setLinkUp(.name(name))
            let link = try #require(try netlink.link(.name(name)))
            #expect(link.kind == "vxlan" && link.isUp)

            let details = try #require(try ipJSON(namespaces[0], "-d", "link", "show", "dev", name).first)
            let data = (details["linkinfo"] as? [String: Any])?["info_data"] as? [String: Any]
            #expect(data?["external"] as? Bool == true)
            #expect(data?["port"] as? Int == 8472)
        }
    }

    @Test func dumpsSpanningSeveralDatagrams() throws {
        try withNamespaces(1) { namespaces in
            let netlink = try namespaces[0].withFD { try Netlink(namespaceFD: $0) }
            let base = uniqueName()
            let names = (0..<80).map { base + "b\($0)" }
            for name in names { try netlink.createBridge(name: name) }
            // ~80 links of ~1.5 KB each do not fit one netlink datagram.
            #expect(try netlink.links().map(\.name) == ["lo"] + names)
            #expect(try ipJSON(namespaces[0], "link", "show").count == 81)
        }
    }

    @Test func oneClientServesConcurrentTasks() async throws {
        let netlink = try Netlink()
        let counts = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<16 { group.addTask { try netlink.links().count } }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(counts.count == 16 && counts.allSatisfy { $0 > 0 })
    }
}
