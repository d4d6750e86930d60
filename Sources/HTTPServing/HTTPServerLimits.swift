/// What one listener of the agent's HTTP servers allows a client. The same limits apply to the
/// API socket, the Prometheus ports and the service map page (`agent.http.*` in the config).
public struct HTTPServerLimits: Sendable, Equatable {
    /// Open connections per listener. At the cap a new connection closes the connection that
    /// has waited longest without sending a whole request head; when every connection is busy
    /// with a request, the new one gets 503 and is closed.
    public var maxConnections: Int
    /// A request head must arrive whole within this time of its first byte (else 408, closed).
    public var headerTimeout: Duration
    /// A connection with no request in progress, a request body that stops arriving and a client
    /// that stops reading a response are closed after this long.
    public var idleTimeout: Duration
    /// Request line plus header fields (else 431).
    public var maxHeadBytes: Int
    /// Request body, however framed (else 413).
    public var maxBodyBytes: Int
    /// Header fields in one request head (else 431).
    public var maxHeaderFields: Int

    public init(maxConnections: Int = 8192, headerTimeout: Duration = .seconds(10), idleTimeout: Duration = .seconds(120),
                maxHeadBytes: Int = 64 * 1024, maxBodyBytes: Int = 16 << 20, maxHeaderFields: Int = 100) {
        self.maxConnections = maxConnections
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
        self.maxHeadBytes = maxHeadBytes
        self.maxBodyBytes = maxBodyBytes
        self.maxHeaderFields = maxHeaderFields
    }
}
