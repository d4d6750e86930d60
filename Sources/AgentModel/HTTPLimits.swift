import Config
import HTTPServing

extension HTTPServerLimits {
    /// The limits `agent.http.*` sets for every listener of the agent.
    public init(_ http: AgentConfig.HTTP) {
        self.init(maxConnections: http.maxConnections,
                  headerTimeout: .seconds(http.headerTimeoutSeconds),
                  idleTimeout: .seconds(http.idleTimeoutSeconds),
                  maxHeadBytes: http.maxHeadBytes,
                  maxBodyBytes: http.maxBodyBytes)
    }
}
