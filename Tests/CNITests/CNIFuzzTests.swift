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
