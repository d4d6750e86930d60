import CNIConfig
import Foundation
import Testing
import TestSupport

/// The plugin's stdin reader under the mutation fuzzer (issue 16: 1e19 as an MTU trapped it).
@Suite struct CNIFuzzTests {
    @Test func networkConfigReader() {
        let seeds = [Fuzzer.repositoryFile("config/cilium-cni.conflist"),
                     #"{"cniVersion":"1.0.0","name":"c","type":"cilium-cni","mtu":1400,"agentSocket":"/run/c.sock","args":{"cni":{"labels":["app=web",{"key":"k8s:tier","value":"db"}]}},"runtimeConfig":{}}"#,
                     #"{"cniVersion":"0.4.0","name":"c","type":"cilium-cni","prevResult":{"cniVersion":"0.4.0","interfaces":[{"name":"eth0","mac":"02:00:00:00:00:01","sandbox":"/var/run/netns/x"}],"ips":[{"version":"4","address":"10.0.0.2/24","gateway":"10.0.0.1","interface":0}]}}"#]
        let report = Fuzzer.run("CNI network configuration", seeds: seeds) { text in
            let data = Data(text.utf8)
            _ = NetworkConfig.peekVersion(data)
            do throws(CNIError) { _ = try NetworkConfig.parse(data) } catch { _ = error.json(cniVersion: "1.0.0") }
        }
        #expect(report.slowest < Fuzzer.slowest)
    }
}

/// Issue 17, gap 4: runtimeConfig.portMappings, as runtimes pass the portMappings capability.
@Suite struct PortMappingConfigTests {
    static func parse(_ runtimeConfig: String) throws(CNIError) -> NetworkConfig {
        try NetworkConfig.parse(Data(#"{"cniVersion":"1.0.0","name":"c","type":"cilium-cni","runtimeConfig":\#(runtimeConfig)}"#.utf8))
    }

    @Test func portMappingsAreRead() throws {
        let config = try Self.parse(#"{"portMappings":[{"hostPort":8081,"containerPort":80,"protocol":"tcp"},{"hostPort":53,"containerPort":5353,"protocol":"UDP","hostIP":"172.30.0.11"}]}"#)
        #expect(config.portMappings.count == 2)
        #expect(config.portMappings[0].hostPort == 8081 && config.portMappings[0].containerPort == 80 && config.portMappings[0].proto == "tcp")
        #expect(config.portMappings[1].proto == "udp" && config.portMappings[1].hostIP == "172.30.0.11")
        #expect(try Self.parse("{}").portMappings.isEmpty)
    }

    @Test(arguments: [
        (#"{"portMappings":{}}"#, "must be an array"),
        (#"{"portMappings":[{"hostPort":0,"containerPort":80}]}"#, "hostPort"),
        (#"{"portMappings":[{"hostPort":70000,"containerPort":80}]}"#, "hostPort"),
        (#"{"portMappings":[{"hostPort":80,"containerPort":"80"}]}"#, "containerPort\" must be a number"),
        (#"{"portMappings":[{"hostPort":80,"containerPort":80,"protocol":"sctp"}]}"#, "protocol"),
        (#"{"portMappings":[{"hostPort":80,"containerPort":80,"hostIP":"::1"}]}"#, "hostIP"),
    ])
    func badPortMappingsNameTheField(_ input: String, _ fragment: String) {
        do {
            _ = try Self.parse(input)
            Issue.record("accepted \(input)")
        } catch {
            #expect(error.msg.contains(fragment), "\(error.msg)")
        }
    }
}
