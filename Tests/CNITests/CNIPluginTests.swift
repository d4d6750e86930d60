import API
import Datapath
import LinuxNet
import Foundation
import Testing

/// Runs the built `cilium-cni` as a container runtime would (CNI_* environment, config on stdin,
/// inside a node network namespace) against a stub agent, and checks the result, the kernel state
/// in both namespaces, and what the agent was told.
@Suite(.serialized)
struct CNIPluginTests {
    static var labels: [Any] { [["key": "app", "value": "web"], "tier=front"] }

    static func isMAC(_ value: Any?) -> Bool {
        guard let s = value as? String else { return false }
        return s.range(of: "^[0-9a-f]{2}(:[0-9a-f]{2}){5}$", options: .regularExpression) != nil
    }

    @Test func addConfiguresBothSidesTellsTheAgentAndDelRemovesIt() async throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let add = try await f.run("ADD", config: f.config(extra: ["args": ["cni": ["labels": Self.labels]]]))
        #expect(add.status == 0, "\(add)")
        let result = add.json
        let hostName = Fixture.hostIfName
        #expect(hostName.count == 14)

        // Spec-shaped result.
        #expect(result["cniVersion"] as? String == "1.0.0")
        let interfaces = try #require(result["interfaces"] as? [[String: Any]])
        try #require(interfaces.count == 2)
        #expect(interfaces[0]["name"] as? String == hostName)
        #expect(Self.isMAC(interfaces[0]["mac"]))
        #expect(interfaces[0]["sandbox"] == nil)
        #expect(interfaces[1]["name"] as? String == "eth0")
        #expect(Self.isMAC(interfaces[1]["mac"]))
        #expect(interfaces[1]["sandbox"] as? String == f.container.path)
        let ips = try #require(result["ips"] as? [[String: Any]])
        #expect(ips.count == 1)
        #expect(ips.first?["address"] as? String == "10.211.0.2/32")
        #expect(ips.first?["gateway"] as? String == StubAgent.gateway)
        #expect(ips.first?["interface"] as? Int == 1)
        #expect(ips.first?["version"] == nil)
        let routes = try #require(result["routes"] as? [[String: Any]])
        #expect(routes.count == 1)
        #expect(routes.first?["dst"] as? String == "0.0.0.0/0")
        #expect(routes.first?["gw"] as? String == StubAgent.gateway)
        #expect((result["dns"] as? [String: Any])?.isEmpty == true)
        let hostMAC = interfaces[0]["mac"] as? String, containerMAC = interfaces[1]["mac"] as? String

        // Container side: address, up, routes, permanent neighbour for the gateway.
        let eth0 = ipJSON(f.container, "addr", "show", "dev", "eth0")
        let info = eth0.first?["addr_info"] as? [[String: Any]] ?? []
        #expect(info.contains { $0["local"] as? String == "10.211.0.2" && $0["prefixlen"] as? Int == 32 }, "\(eth0)")
        #expect((eth0.first?["flags"] as? [String])?.contains("UP") == true)
        #expect(eth0.first?["address"] as? String == containerMAC)
        #expect((ipJSON(f.container, "link", "show", "dev", "lo").first?["flags"] as? [String])?.contains("UP") == true)
        let containerRoutes = ipJSON(f.container, "route", "show")
        #expect(containerRoutes.contains {
            $0["dst"] as? String == "default" && $0["gateway"] as? String == StubAgent.gateway && $0["dev"] as? String == "eth0"
        }, "\(containerRoutes)")
        #expect(containerRoutes.contains {
            $0["dst"] as? String == StubAgent.gateway && $0["scope"] as? String == "link" && $0["dev"] as? String == "eth0"
        }, "\(containerRoutes)")
        let neighbors = ipJSON(f.container, "neigh", "show", "dev", "eth0")
        #expect(neighbors.contains {
            $0["dst"] as? String == StubAgent.gateway && $0["lladdr"] as? String == hostMAC
                && ($0["state"] as? [String])?.contains("PERMANENT") == true
        }, "\(neighbors)")
        #expect(linkNames(f.container).sorted() == ["eth0", "lo"])

        // Host side: the lxc veth exists and is up.
        let hostLink = ipJSON(f.node, "link", "show", "dev", hostName).first
        #expect((hostLink?["flags"] as? [String])?.contains("UP") == true, "\(String(describing: hostLink))")
        #expect(hostLink?["address"] as? String == hostMAC)

        // The agent got the endpoint with labels and pod name.
        let created = f.agent.state.withLock { $0.created }
        try #require(created.count == 1)
        let request = created[0]
        #expect(request.containerID == Fixture.containerID)
        #expect(request.labels == ["app=web", "tier=front"])
        #expect(request.podNamespace == "default")
        #expect(request.podName == "web-0")
        #expect(request.hostIfName == hostName)
        #expect(request.ifName == "eth0")
        #expect(request.netns == f.container.path)
        #expect(request.address == "10.211.0.2")
        #expect(request.mac == containerMAC)

        // Traffic both ways once the node side does what the agent would (gateway address, host route).
        let node = try Netlink(namespace: f.node)
        try node.addAddress(Netlink.IPv4Prefix("\(StubAgent.gateway)/32")!, to: .name(hostName))
        try node.addRoute(Netlink.Route(destination: Netlink.IPv4Prefix("10.211.0.2/32")!,
                                        outputIndex: try node.index(of: .name(hostName))))
        #expect(try udpDelivered(from: f.container, to: f.node, address: StubAgent.gateway))
        #expect(try udpDelivered(from: f.node, to: f.container, address: "10.211.0.2"))

        // CHECK with the ADD result as prevResult.
        let check = try await f.run("CHECK", config: f.config(extra: ["prevResult": result]))
        #expect(check.status == 0, "\(check)")
        #expect(check.stdout.isEmpty || String(decoding: check.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)

        // DEL removes the veth pair and tells the agent, which releases the address.
        let del = try await f.run("DEL", config: f.config(extra: ["prevResult": result]))
        #expect(del.status == 0, "\(del)")
        #expect(!linkNames(f.node).contains(hostName))
        #expect(linkNames(f.container) == ["lo"])
        f.agent.state.withLock { s in
            #expect(s.endpoints.isEmpty)
            #expect(s.addresses.isEmpty)
            #expect(s.requests.contains("DELETE /v1/endpoint?containerID=\(Fixture.containerID)"))
        }

        // DEL again: nothing left, still success.
        let again = try await f.run("DEL")
        #expect(again.status == 0, "\(again)")
    }

    @Test func delSucceedsWhenTheNetnsIsGone() async throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let add = try await f.run("ADD")
        try #require(add.status == 0, "\(add)")
        let path = f.container.path
        try f.container.delete()
        let del = try await f.run("DEL", netns: path)
        #expect(del.status == 0, "\(del)")
        #expect(!linkNames(f.node).contains(Fixture.hostIfName))
        #expect(f.agent.state.withLock { $0.endpoints.isEmpty && $0.addresses.isEmpty })
        // And without any CNI_NETNS at all (allowed for DEL).
        let del2 = try await f.run("DEL", netns: .some(nil))
        #expect(del2.status == 0, "\(del2)")
    }

    @Test func delWithTheAgentDownRemovesTheVethAndAsksToRetry() async throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let add = try await f.run("ADD")
        try #require(add.status == 0, "\(add)")
        f.stopAgent()
        let del = try await f.run("DEL")
        #expect(del.status == 1)
        #expect(del.code == 11, "\(del)")
        #expect(del.msg.contains(f.socket))
        #expect(del.details.contains("removed the local interface(s) \(Fixture.hostIfName)"), "\(del)")
        #expect(!linkNames(f.node).contains(Fixture.hostIfName))
        #expect(linkNames(f.container) == ["lo"])
        // Once the agent is back, DEL completes and the address is released.
        try f.startAgent()
        let retry = try await f.run("DEL")
        #expect(retry.status == 0, "\(retry)")
        #expect(f.agent.state.withLock { $0.addresses.isEmpty })
    }

    @Test func checkReportsWhatIsMissing() async throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let add = try await f.run("ADD")
        try #require(add.status == 0, "\(add)")
        let prev = add.json

        let noPrev = try await f.run("CHECK")
        #expect(noPrev.code == 7, "\(noPrev)")

        // The agent forgot the endpoint.
        let saved = f.agent.state.withLock { $0.endpoints.removeValue(forKey: Fixture.containerID) }
        let unknown = try await f.run("CHECK", config: f.config(extra: ["prevResult": prev]))
        #expect(unknown.code == 104, "\(unknown)")
        #expect(unknown.msg.contains("no endpoint"))
        f.agent.state.withLock { $0.endpoints[Fixture.containerID] = saved }

        // The address was removed from eth0.
        _ = try shell(["ip", "-n", f.container.name!, "addr", "del", "10.211.0.2/32", "dev", "eth0"])
        let noAddress = try await f.run("CHECK", config: f.config(extra: ["prevResult": prev]))
        #expect(noAddress.status == 1)
        #expect(noAddress.code == 104, "\(noAddress)")
        #expect(noAddress.msg.contains("10.211.0.2/32"))
    }

    @Test func versionListsTheSupportedVersions() async throws {
        let f = try Fixture(startAgent: false)
        defer { f.cleanup() }
        let run = try await f.run("VERSION", stdin: Data(#"{"cniVersion":"1.0.0"}"#.utf8), containerID: nil, netns: .some(nil),
                                  ifName: nil, args: nil)
        #expect(run.status == 0, "\(run)")
        #expect(run.json["cniVersion"] as? String == "1.0.0")
        #expect(run.json["supportedVersions"] as? [String] == ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    }

    @Test func statusFollowsTheAgentsHealth() async throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let up = try await f.run("STATUS", config: f.config(version: "1.1.0"), containerID: nil, netns: .some(nil), ifName: nil)
        #expect(up.status == 0, "\(up)")
        #expect(up.stdout.isEmpty)
        f.stopAgent()
        let down = try await f.run("STATUS", config: f.config(version: "1.1.0"), containerID: nil, netns: .some(nil), ifName: nil)
        #expect(down.status == 1)
        #expect(down.code == 50, "\(down)")
        #expect(down.json["cniVersion"] as? String == "1.1.0")
        #expect(down.msg.contains(f.socket))
    }

    @Test func malformedStdinIsRejectedNamingTheField() async throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let notJSON = try await f.run("ADD", stdin: Data("{\"cniVersion\": ".utf8))
        #expect(notJSON.code == 6, "\(notJSON)")
        #expect(notJSON.status == 1)

        var noName = f.config()
        noName.removeValue(forKey: "name")
        let missing = try await f.run("ADD", config: noName)
        #expect(missing.code == 6, "\(missing)")
        #expect(missing.msg.contains("\"name\""))

        let badMTU = try await f.run("ADD", config: f.config(extra: ["mtu": "big"]))
        #expect(badMTU.code == 6, "\(badMTU)")
        #expect(badMTU.msg.contains("mtu"))

        // Numbers no integer type holds (issue 16: the plugin trapped, exit 132, no JSON): the spec's error.
        for (raw, field) in [(#"{"cniVersion":"1.0.0","name":"c","type":"cilium-cni","mtu":1e19}"#, "mtu"),
                             (#"{"cniVersion":"1.0.0","name":"c","type":"cilium-cni","mtu":-1e300}"#, "mtu"),
                             (#"{"cniVersion":"1.0.0","name":"c","type":"cilium-cni","prevResult":{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24","interface":1e30}]}}"#,
                              "interface")] {
            for command in ["ADD", "GC", "CHECK"] {
                let run = try await f.run(command, stdin: Data(raw.utf8))
                #expect(run.status == 1 && run.code != nil, "\(command) \(raw): \(run)")
                #expect(run.msg.contains(field), "\(run)")
            }
        }
        // Where the JSON breaks, by line and column.
        let broken = try await f.run("ADD", stdin: Data("{\"cniVersion\": \"1.0.0\",\n \"name\": \"c\" x}".utf8))
        #expect(broken.details == "line 2, column 14: expected ',' or '}', found 'x'", "\(broken)")

        // Kubernetes' label rules (issue 16: `$(id)`, NUL bytes and megabytes were accepted).
        for (label, what) in [("app=$(id)", "label value"), ("ap\u{0}p=x", "label key"), ("app=" + String(repeating: "v", count: 100_000), "label value")] {
            let refused = try await f.run("ADD", config: f.config(extra: ["args": ["cni": ["labels": [label]]]]))
            #expect(refused.status == 1 && refused.msg.contains(what) && refused.msg.count < 300, "\(refused.msg.prefix(300))")
        }

        let badLabel = try await f.run("ADD", config: f.config(extra: ["args": ["cni": ["labels": ["novalue"]]]]))
        #expect(badLabel.code == 6, "\(badLabel)")
        #expect(badLabel.msg.contains("args.cni.labels[0]"))

        let tooNew = try await f.run("ADD", config: f.config(version: "2.0.0"))
        #expect(tooNew.code == 1, "\(tooNew)")

        #expect(f.agent.state.withLock { $0.requests.isEmpty })
        #expect(linkNames(f.node) == ["lo"])
        #expect(linkNames(f.container) == ["lo"])
    }

    @Test func badEnvironmentIsRejectedNamingTheVariable() async throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let noNetns = try await f.run("ADD", netns: .some(nil))
        #expect(noNetns.code == 4, "\(noNetns)")
        #expect(noNetns.msg.contains("CNI_NETNS"))

        let noID = try await f.run("ADD", containerID: nil)
        #expect(noID.code == 4, "\(noID)")
        #expect(noID.msg.contains("CNI_CONTAINERID"))

        let badIf = try await f.run("ADD", ifName: "this-name-is-too-long")
        #expect(badIf.code == 4, "\(badIf)")
        #expect(badIf.msg.contains("CNI_IFNAME"))

        let badCommand = try await f.run("FROB")
        #expect(badCommand.code == 4, "\(badCommand)")

        let notANetns = try await f.run("ADD", netns: .some(f.directory))
        #expect(notANetns.code == 4, "\(notANetns)")

        #expect(f.agent.state.withLock { $0.requests.isEmpty })
        #expect(linkNames(f.node) == ["lo"])
    }

    @Test func nonexistentNetnsIsUnknownContainer() async throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let run = try await f.run("ADD", netns: .some("/run/netns/\(f.container.name!)-missing"))
        #expect(run.status == 1)
        #expect(run.code == 3, "\(run)")
        #expect(f.agent.state.withLock { $0.requests.isEmpty })
        #expect(linkNames(f.node) == ["lo"])
    }

    @Test func agentDownFailsWithTryAgainLaterAndLeavesNothing() async throws {
        let f = try Fixture(startAgent: false)
        defer { f.cleanup() }
        let run = try await f.run("ADD")
        #expect(run.status == 1)
        #expect(run.code == 11, "\(run)")
        #expect(run.msg.contains(f.socket))
        #expect(run.details.contains("cilium-agent is running"))
        #expect(linkNames(f.node) == ["lo"])
        #expect(linkNames(f.container) == ["lo"])
    }

    @Test func ipamExhaustedReportsTheAgentsMessageAndLeavesNothing() async throws {
        let f = try Fixture()
        defer { f.cleanup() }
        f.agent.state.withLock { $0.ipamError = (503, "no free address in \(StubAgent.podCIDR)") }
        let run = try await f.run("ADD")
        #expect(run.status == 1)
        #expect(run.code == 101, "\(run)")
        #expect(run.details.contains("no free address in 10.211.0.0/24"))
        #expect(linkNames(f.node) == ["lo"])
        #expect(linkNames(f.container) == ["lo"])
        #expect(f.agent.state.withLock { $0.endpoints.isEmpty && $0.addresses.isEmpty })
    }

    @Test func refusedEndpointRollsBackVethAndAddress() async throws {
        let f = try Fixture()
        defer { f.cleanup() }
        f.agent.state.withLock { $0.endpointError = (500, "identity allocation failed") }
        let run = try await f.run("ADD")
        #expect(run.status == 1)
        #expect(run.code == 103, "\(run)")
        #expect(run.details.contains("identity allocation failed"))
        #expect(!run.details.contains("rollback incomplete"), "\(run)")
        #expect(linkNames(f.node) == ["lo"])
        #expect(linkNames(f.container) == ["lo"])
        f.agent.state.withLock { s in
            #expect(s.addresses.isEmpty)
            #expect(s.requests.last == "DELETE /v1/endpoint?containerID=\(Fixture.containerID)")
        }
    }

    @Test func existingInterfaceNameIsRefusedBeforeAllocating() async throws {
        let f = try Fixture()
        defer { f.cleanup() }
        try Netlink(namespace: f.container).createVeth(name: "eth0", peerName: "other0")
        let run = try await f.run("ADD")
        #expect(run.code == 102, "\(run)")
        #expect(run.msg.contains("eth0"))
        #expect(f.agent.state.withLock { $0.requests.isEmpty })
        #expect(linkNames(f.node) == ["lo"])
        #expect(linkNames(f.container).sorted() == ["eth0", "lo", "other0"])
    }

    @Test func legacyVersionResultsCarryIPVersionAndMTUApplies() async throws {
        let f = try Fixture()
        defer { f.cleanup() }
        let run = try await f.run("ADD", config: f.config(version: "0.4.0", extra: ["mtu": 1400]))
        #expect(run.status == 0, "\(run)")
        #expect(run.json["cniVersion"] as? String == "0.4.0")
        let ips = run.json["ips"] as? [[String: Any]] ?? []
        #expect(ips.first?["version"] as? String == "4")
        #expect(ipJSON(f.container, "link", "show", "dev", "eth0").first?["mtu"] as? Int == 1400)
        #expect(ipJSON(f.node, "link", "show", "dev", Fixture.hostIfName).first?["mtu"] as? Int == 1400)
        let del = try await f.run("DEL", config: f.config(version: "0.4.0"))
        #expect(del.status == 0, "\(del)")
        #expect(linkNames(f.node) == ["lo"])
    }
}
