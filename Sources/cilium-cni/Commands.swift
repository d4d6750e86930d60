import CNIConfig
import API
import LinuxNet
import Glibc

/// ADD, DEL and CHECK. The process runs in the node's network namespace; the container's is reached
/// through a netlink socket opened inside CNI_NETNS, so no thread of this process changes namespace.
struct Commands {
    let env: CNIEnvironment
    let config: NetworkConfig

    var agent: AgentClient { AgentClient(socketPath: config.agentSocket) }
    var hostIfName: String { CNIEnvironment.hostInterfaceName(containerID: env.containerID) }

    // MARK: ADD

    func add() throws(CNIError) -> CNIResult {
        let namespace = try CNIEnvironment.checkNamespace(env.netns)
        let nsFD = try netlinkStep("open the container's network namespace \(env.netns)") { try namespace.open() }
        defer { close(nsFD) }
        let host = try netlinkStep("open a netlink socket") { try Netlink() }
        let container = try netlinkStep("open a netlink socket in \(env.netns)") { try Netlink(namespaceFD: nsFD) }
        if let existing = try netlinkStep("look up \(env.ifName) in \(env.netns)", { try container.link(.name(env.ifName)) }) {
            throw CNIError(.interfaceSetup, "an interface named \(env.ifName) already exists in \(env.netns)",
                           details: "ifindex \(existing.index)\(existing.kind.map { ", kind \($0)" } ?? ""); choose another CNI_IFNAME or DEL the previous attachment first")
        }

        let ipam = try agent.allocate(owner: env.containerID)
        // From here on the agent holds an address for this container: any failure gives it back.
        var peerName: String?
        do throws(CNIError) {
            guard let address = Netlink.IPv4Address(String(ipam.address.split(separator: "/").first ?? "")),
                  let gateway = Netlink.IPv4Address(ipam.gateway) else {
                throw CNIError(.agentProtocol, "the agent's IPAM answer has an invalid address or gateway",
                               details: "address \"\(ipam.address)\", gateway \"\(ipam.gateway)\"")
            }
            let hostName = hostIfName
            // A leftover from an ADD that crashed before its rollback: same container id, same name.
            if let stale = try netlinkStep("look up \(hostName)", { try host.link(.name(hostName)) }), stale.kind == "veth" {
                try netlinkStep("delete the stale \(hostName)") { try host.deleteLink(.index(stale.index)) }
            }
            let temporary = "tmp" + String(UInt64.random(in: 0...UInt64.max), radix: 16).prefix(12)
            try netlinkStep("create the veth pair") {
                try host.createVeth(name: hostName, peerName: temporary, peerNamespaceFD: nsFD, mtu: config.mtu)
            }
            peerName = temporary
            let hostLink = try netlinkStep("set up \(hostName)") { () throws -> Netlink.Link in
                try host.setLinkUp(.name(hostName))
                guard let link = try host.link(.name(hostName)), link.mac != nil else {
                    throw NetlinkError(operation: "read the MAC of \(hostName)", code: ENODEV)
                }
                return link
            }
            let containerLink = try netlinkStep("configure \(env.ifName) in \(env.netns)") { () throws -> Netlink.Link in
                try container.renameLink(.name(temporary), to: env.ifName)
                peerName = env.ifName
                try container.addAddress(Netlink.IPv4Prefix(address, length: 32), to: .name(env.ifName))
                if let lo = try container.link(.name("lo")), !lo.isUp { try container.setLinkUp(.index(lo.index)) }
                try container.setLinkUp(.name(env.ifName))
                guard let link = try container.link(.name(env.ifName)), link.mac != nil else {
                    throw NetlinkError(operation: "read the MAC of \(env.ifName)", code: ENODEV)
                }
                // The gateway is on-link through the veth, whatever its subnet; everything goes through it, sized
                // to what still fits the node's device after the tunnel's and encryption's headers.
                let mtu = ipam.routeMTU.flatMap { $0 < link.mtu ? $0 : nil }
                try container.addRoute(Netlink.Route(destination: Netlink.IPv4Prefix(gateway, length: 32),
                                                     outputIndex: link.index, scope: .link, mtu: mtu))
                try container.addRoute(Netlink.Route(destination: .default, gateway: gateway, outputIndex: link.index, mtu: mtu))
                // No ARP for the gateway: it resolves to the host-side veth, where the datapath takes over.
                try container.addNeighbor(gateway, mac: hostLink.mac!, on: .index(link.index))
                return link
            }
            let mac = containerLink.mac!.description
            try agent.createEndpoint(EndpointCreateRequest(
                containerID: env.containerID, netns: env.netns, ifName: env.ifName, hostIfName: hostName,
                address: address.description, mac: mac, labels: config.labels,
                podNamespace: env.args["K8S_POD_NAMESPACE"].flatMap { $0.isEmpty ? nil : $0 },
                podName: env.args["K8S_POD_NAME"].flatMap { $0.isEmpty ? nil : $0 },
                portMappings: config.portMappings.isEmpty ? nil : config.portMappings.map {
                    PortMapping(hostPort: $0.hostPort, containerPort: $0.containerPort, protocol_: $0.proto,
                                hostIP: $0.hostIP.isEmpty ? nil : $0.hostIP)
                },
                namedPorts: config.namedPorts.isEmpty ? nil : config.namedPorts.map {
                    NamedPort(name: $0.name, port: $0.port, protocol_: $0.proto)
                }))

            let reportMTU = config.cniVersion == "1.1.0" && config.mtu != nil
            let legacy = config.cniVersion.hasPrefix("0.")
            return CNIResult(
                cniVersion: config.cniVersion,
                interfaces: [
                    .init(name: hostName, mac: hostLink.mac!.description, mtu: reportMTU ? Int(hostLink.mtu) : nil),
                    .init(name: env.ifName, mac: mac, mtu: reportMTU ? Int(containerLink.mtu) : nil, sandbox: env.netns),
                ],
                ips: [.init(version: legacy ? "4" : nil, address: "\(address)/32", gateway: gateway.description, interface: 1)],
                routes: [.init(dst: "0.0.0.0/0", gw: gateway.description)])
        } catch {
            throw rollback(error, host: host, container: container, peerName: peerName)
        }
    }

    /// Undoes a failed ADD: the veth pair and the agent's endpoint and address. Returns `error`, with
    /// anything that could not be undone added to its details.
    private func rollback(_ error: CNIError, host: Netlink, container: Netlink, peerName: String?) -> CNIError {
        var leftovers: [String] = []
        do {
            if let link = try host.link(.name(hostIfName)), link.kind == "veth" { try host.deleteLink(.index(link.index)) }
        } catch {
            leftovers.append("\(error)")
        }
        if let peerName {
            // Normally gone with its host-side peer; only if deleting that failed is it still there.
            do {
                if let link = try container.link(.name(peerName)), link.kind == "veth" { try container.deleteLink(.index(link.index)) }
            } catch {
                leftovers.append("\(error)")
            }
        }
        if case .failure(let e) = agent.deleteEndpoint(containerID: env.containerID) {
            leftovers.append("the agent still holds the address of container \(env.containerID) (\(e.description))")
        }
        guard !leftovers.isEmpty else { return error }
        var error = error
        error.details += (error.details.isEmpty ? "" : "; ") + "rollback incomplete: " + leftovers.joined(separator: "; ")
        return error
    }

    // MARK: DEL

    /// Idempotent: whatever is already gone (endpoint, veth, namespace) counts as deleted.
    func del() throws(CNIError) {
        var agentError: CNIError?
        var localErrors: [CNIError] = []
        var names = [hostIfName]
        var removed: [String] = []
        switch agent.deleteEndpoint(containerID: env.containerID) {
        case .success(let answer):
            if let name = answer.hostIfName, !name.isEmpty, !names.contains(name) { names.insert(name, at: 0) }
        case .failure(let error):
            agentError = error
        }
        do {
            let host = try Netlink()
            for name in names where try deleteVeth(name, in: host) {
                removed.append(name)
            }
        } catch {
            localErrors.append(CNIError(.tryAgainLater, "could not delete the host-side interface", details: "\(error)"))
        }
        // The container side normally went with its peer; a namespace that is gone needs nothing.
        if !env.netns.isEmpty, NetworkNamespace(path: env.netns).exists {
            do {
                let container = try NetworkNamespace(path: env.netns).withFD { try Netlink(namespaceFD: $0) }
                if try deleteVeth(env.ifName, in: container) { removed.append("\(env.ifName) in \(env.netns)") }
            } catch let error as NetworkNamespaceError where error.code == ENOENT {
                // Deleted meanwhile.
            } catch {
                localErrors.append(CNIError(.tryAgainLater, "could not delete \(env.ifName) in \(env.netns)", details: "\(error)"))
            }
        }
        if var error = agentError {
            guard localErrors.isEmpty else {
                error.details += "; also: " + localErrors.map(\.description).joined(separator: "; ")
                throw error
            }
            error.details += removed.isEmpty ? "; no local interface was left to remove"
                : "; removed the local interface(s) \(removed.joined(separator: ", "))"
            if error.code == CNIError.Code.tryAgainLater.rawValue {
                error.details += "; the endpoint and its address are not released yet: retry DEL when the agent is back"
            }
            throw error
        }
        if var error = localErrors.first {
            if localErrors.count > 1 {
                error.details += "; also: " + localErrors.dropFirst().map(\.description).joined(separator: "; ")
            }
            throw error
        }
    }

    /// Deletes a veth by name; false if there was none.
    private func deleteVeth(_ name: String, in netlink: Netlink) throws -> Bool {
        guard let link = try netlink.link(.name(name)), link.kind == "veth" else { return false }
        do {
            try netlink.deleteLink(.index(link.index))
            return true
        } catch let error as NetlinkError where error.code == ENODEV {
            return false  // went away with its peer meanwhile
        }
    }

    // MARK: CHECK

    func check() throws(CNIError) {
        guard let prev = config.prevResult else {
            throw CNIError(.invalidConfig, "CHECK needs \"prevResult\" in the network configuration",
                           details: "the runtime must pass the result of the previous ADD")
        }
        let namespace = try CNIEnvironment.checkNamespace(env.netns)
        guard let containerIndex = prev.interfaces.firstIndex(where: { $0.name == env.ifName && !($0.sandbox ?? "").isEmpty })
                ?? prev.interfaces.firstIndex(where: { $0.name == env.ifName }) else {
            throw CNIError(.checkFailed, "prevResult lists no interface \(env.ifName)")
        }
        let expected = prev.ips.filter { $0.interface == containerIndex || $0.interface == nil }
            .compactMap { Netlink.IPv4Prefix($0.address) }
        guard !expected.isEmpty else {
            throw CNIError(.checkFailed, "prevResult has no IPv4 address for \(env.ifName)")
        }
        let containerInterface = prev.interfaces[containerIndex]
        try netlinkStep("inspect \(env.netns)", { () throws -> Void in
            let container = try namespace.withFD { try Netlink(namespaceFD: $0) }
            guard let link = try container.link(.name(env.ifName)) else {
                throw CNIError(.checkFailed, "interface \(env.ifName) is missing in \(env.netns)")
            }
            guard link.isUp else { throw CNIError(.checkFailed, "interface \(env.ifName) in \(env.netns) is down") }
            if let mac = containerInterface.mac, let actual = link.mac, mac.lowercased() != actual.description {
                throw CNIError(.checkFailed, "interface \(env.ifName) has MAC \(actual), prevResult says \(mac)")
            }
            let addresses = try container.addresses(of: .index(link.index)).map(\.prefix)
            for prefix in expected where !addresses.contains(prefix) {
                throw CNIError(.checkFailed, "interface \(env.ifName) in \(env.netns) lacks address \(prefix)",
                               details: "it has \(addresses.isEmpty ? "none" : addresses.map(\.description).joined(separator: ", "))")
            }
            let host = try Netlink()
            for interface in prev.interfaces where (interface.sandbox ?? "").isEmpty {
                guard let hostLink = try host.link(.name(interface.name)) else {
                    throw CNIError(.checkFailed, "host interface \(interface.name) is missing")
                }
                guard hostLink.isUp else { throw CNIError(.checkFailed, "host interface \(interface.name) is down") }
            }
        })
        guard let endpoint = try agent.endpoint(containerID: env.containerID) else {
            throw CNIError(.checkFailed, "the agent has no endpoint for container \(env.containerID)")
        }
        if !expected.contains(where: { $0.address.description == endpoint.address }) {
            throw CNIError(.checkFailed, "the agent's endpoint for container \(env.containerID) has address \(endpoint.address)",
                           details: "prevResult says \(expected.map(\.description).joined(separator: ", "))")
        }
    }

    // MARK: helpers

    /// Runs netlink work; CNI errors pass through, others become code 102 naming the step.
    private func netlinkStep<T>(_ what: String, _ body: () throws -> T) throws(CNIError) -> T {
        do {
            return try body()
        } catch let error as CNIError {
            throw error
        } catch {
            throw CNIError(.interfaceSetup, "failed to \(what)", details: "\(error)")
        }
    }
}
