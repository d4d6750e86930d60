import CNIConfig
import HTTPTransport
import API
import Foundation

/// The agent's endpoint API (API/EndpointTypes.swift) as cilium-cni uses it; failures come back as CNI errors.
struct AgentClient {
    let socketPath: String
    let client: UnixHTTPClient

    init(socketPath: String, timeout: TimeInterval = 30) {
        self.socketPath = socketPath
        client = UnixHTTPClient(socketPath: socketPath, timeout: timeout)
    }

    /// The outcome of one request: the agent answered (any status), or could not be reached.
    enum Answer {
        case answered(status: Int, body: Data)
        case unreachable(APIClientError)
    }

    func request(_ method: String, _ path: String, body: (some Encodable)? = nil as String?) -> Answer {
        do {
            let data = try body.map { try JSONEncoder().encode($0) }
            let (status, reply) = try client.send(method: method, path: path, body: data)
            return .answered(status: status, body: reply)
        } catch let error as APIClientError {
            return .unreachable(error)
        } catch {
            return .unreachable(.unreachable(path: socketPath, reason: "\(error)"))
        }
    }

    /// Code 11 ("try again later"): the runtime may retry once the agent is up.
    func unreachableError(_ error: APIClientError, doing what: String) -> CNIError {
        CNIError(.tryAgainLater, "cannot reach the cilium agent at unix://\(socketPath) to \(what)",
                 details: "\(Self.reason(error)); check that cilium-agent is running and serving its API on \(socketPath) (the network config's \"agentSocket\")")
    }

    /// Why the socket could not be used, without the CLI's hints (-H, CILIUM_SOCK).
    static func reason(_ error: APIClientError) -> String {
        switch error {
        case .socketMissing: "no such socket"
        case .permissionDenied: "permission denied (the API socket is root-only)"
        case .connectionRefused: "connection refused (a stale socket: the agent is not running)"
        case .timeout(_, let seconds): "no answer within \(Int(seconds))s (the agent may be overloaded or hung)"
        case .badResponse(_, let reason): "invalid response: \(reason)"
        case .requestFailed(let status, let message): "HTTP \(status): \(message)"
        case .unreachable(_, let reason): reason
        }
    }

    static func endpointPath(_ containerID: String) -> String {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
        return "/v1/endpoint?containerID=" + (containerID.addingPercentEncoding(withAllowedCharacters: allowed) ?? containerID)
    }

    // MARK: Calls

    func allocate(owner: String) throws(CNIError) -> IPAMResponse {
        switch request("POST", "/v1/ipam", body: IPAMRequest(owner: owner)) {
        case .unreachable(let e):
            throw unreachableError(e, doing: "allocate an address")
        case .answered(let status, let body) where (200..<300).contains(status):
            guard let reply = try? JSONDecoder().decode(IPAMResponse.self, from: body) else {
                throw CNIError(.agentProtocol, "the agent's answer to POST /v1/ipam is not an IPAM response",
                               details: String(decoding: body.prefix(300), as: UTF8.self))
            }
            return reply
        case .answered(let status, let body):
            throw CNIError(.ipamFailure, "the agent could not allocate an address for container \(owner)",
                           details: "HTTP \(status): \(APIClientError.message(fromBody: body))")
        }
    }

    func createEndpoint(_ endpoint: EndpointCreateRequest) throws(CNIError) {
        switch request("PUT", "/v1/endpoint", body: endpoint) {
        case .unreachable(let e):
            throw unreachableError(e, doing: "create the endpoint")
        case .answered(let status, _) where (200..<300).contains(status):
            return
        case .answered(let status, let body):
            throw CNIError(.endpointRefused, "the agent refused to create the endpoint for container \(endpoint.containerID)",
                           details: "HTTP \(status): \(APIClientError.message(fromBody: body))")
        }
    }

    /// DELETE /v1/endpoint: the host veth's name if the agent knew it. Absent endpoints are not an error.
    func deleteEndpoint(containerID: String) -> Result<EndpointDeleteResponse, CNIError> {
        switch request("DELETE", Self.endpointPath(containerID)) {
        case .unreachable(let e):
            return .failure(unreachableError(e, doing: "delete the endpoint"))
        case .answered(let status, let body) where (200..<300).contains(status):
            return .success((try? JSONDecoder().decode(EndpointDeleteResponse.self, from: body))
                ?? EndpointDeleteResponse(hostIfName: nil, released: nil))
        case .answered(404, _):
            return .success(EndpointDeleteResponse(hostIfName: nil, released: nil))
        case .answered(let status, let body):
            let code: CNIError.Code = status >= 500 ? .tryAgainLater : .endpointRefused
            return .failure(CNIError(code, "the agent could not delete the endpoint of container \(containerID)",
                                     details: "HTTP \(status): \(APIClientError.message(fromBody: body))"))
        }
    }

    /// GET /v1/endpoint: the endpoint, nil if the agent does not know it.
    func endpoint(containerID: String) throws(CNIError) -> EndpointModel? {
        switch request("GET", Self.endpointPath(containerID)) {
        case .unreachable(let e):
            throw unreachableError(e, doing: "look up the endpoint")
        case .answered(200, let body):
            guard let model = try? JSONDecoder().decode(EndpointModel.self, from: body) else {
                throw CNIError(.agentProtocol, "the agent's answer to GET /v1/endpoint is not an endpoint",
                               details: String(decoding: body.prefix(300), as: UTF8.self))
            }
            return model
        case .answered(404, _):
            return nil
        case .answered(let status, let body):
            throw CNIError(.agentProtocol, "the agent could not look up the endpoint of container \(containerID)",
                           details: "HTTP \(status): \(APIClientError.message(fromBody: body))")
        }
    }

    /// STATUS: code 50 unless GET /v1/healthz succeeds.
    func health() throws(CNIError) {
        switch request("GET", "/v1/healthz") {
        case .answered(let status, _) where (200..<300).contains(status):
            return
        case .answered(let status, let body):
            throw CNIError(.pluginNotAvailable, "the cilium agent at unix://\(socketPath) is not healthy",
                           details: "GET /v1/healthz answered HTTP \(status): \(APIClientError.message(fromBody: body))")
        case .unreachable(let e):
            throw CNIError(.pluginNotAvailable, "the cilium agent at unix://\(socketPath) is not reachable",
                           details: "\(Self.reason(e)); check that cilium-agent is running and serving its API on \(socketPath)")
        }
    }
}
